/**
 * A seed's server kept in step with the mesh: its allowed nkeys follow trust (joins, revocations),
 * and its routes and trusted peer certificates follow the route book (nats-routes.ts), which grows
 * with the signed route announcements of other seeds and shrinks with revocations. Changes within
 * NATS_RELOAD_DEBOUNCE_MS go to the server in one reload, and one reload runs at a time: changes
 * made while it runs go in the next. The seed announces its own route when
 * attached, every NATS_ROUTE_ANNOUNCE_INTERVAL_MS (so that a seed that was away, or new, hears it),
 * and once more whenever it learns a new peer (so that the new peer hears it at once).
 */
import type { Logger } from "pino";
import type { DeliveredBroadcast, MeshNode } from "../mesh-node.ts";
import type { NatsServer } from "../nats-server.ts";
import {
  BadRouteAnnouncementError,
  decodeRouteAnnouncement,
  encodeRouteAnnouncement,
  NATS_ROUTE_TOPIC,
  type RoutePeerBook,
} from "./nats-routes.ts";

/** Trust and route changes within this long are applied to the server in one reload. */
export const NATS_RELOAD_DEBOUNCE_MS = 100;
/** How often a seed announces its server's route URL and certificate. */
export const NATS_ROUTE_ANNOUNCE_INTERVAL_MS = 30_000;

/** Options of seedRoutes. */
export interface SeedRoutesOptions {
  readonly server: NatsServer;
  readonly book: RoutePeerBook;
  /** The join pin of the issuer's server's certificate, trusted for routes too. */
  readonly pinnedPem: string | undefined;
  readonly isRevoked: (keyHex: string) => boolean;
  readonly ownKeyHex: string;
  /** The keys the server must admit now. */
  readonly allowedKeys: () => Uint8Array[];
  readonly log: Logger;
}

/** The running half of a seed's routes (see the file comment). */
export interface SeedRoutes {
  readonly server: NatsServer;
  /**
   * Apply current trust and routes to the server (debounced); resolves once applied, or after
   * `waitAtMostMs` if given (a failure after that is logged, not thrown).
   */
  refresh(waitAtMostMs?: number): Promise<void>;
  /** Take route announcements from `node`, and announce ours now and periodically. */
  attach(node: MeshNode): void;
  /** Counts of announcements made, learned and refused (by reason), and of reloads, for `status`. */
  counters(): Record<string, number>;
  /** Stop announcing and release waiters. */
  close(): void;
}

/** Keep `server` in step with trust and the route book. */
export function seedRoutes(opts: SeedRoutesOptions): SeedRoutes {
  const { server, book, log } = opts;
  const counts: Record<string, number> = {};
  const count = (name: string): void => {
    counts[name] = (counts[name] ?? 0) + 1;
  };
  let closed = false;
  let saving: Promise<void> = Promise.resolve();
  const save = (): void => {
    saving = saving
      .then(() => book.save())
      .catch((err: unknown) => log.error({ err }, "could not save the nats route book"));
  };

  // One reload at a time. Refreshes that come while one runs wait for the next, which takes
  // whatever changed meanwhile: as members join faster than the server reloads (a reload takes
  // seconds on a loaded machine, and joiners wait on it), reloads stay one behind instead of piling
  // up, and a change already applied (a joiner's second attempt) costs none.
  let timer: ReturnType<typeof setTimeout> | undefined;
  let reloading = false;
  let waiting: { resolve: () => void; reject: (err: unknown) => void }[] = [];
  let lastKeys = keySetOf(opts.allowedKeys());
  let lastRoutes = JSON.stringify(book.routeSet(opts.pinnedPem));
  const flush = (): void => {
    timer = undefined;
    if (reloading) return; // the running reload flushes again when it ends
    const batch = waiting;
    waiting = [];
    if (book.dropRevoked(opts.isRevoked)) save();
    const keys = opts.allowedKeys();
    const keySet = keySetOf(keys);
    const routes = book.routeSet(opts.pinnedPem);
    const routeSet = JSON.stringify(routes);
    if (closed || (keySet === lastKeys && routeSet === lastRoutes)) {
      for (const w of batch) w.resolve();
      return;
    }
    reloading = true;
    count("nats:reloads");
    server
      .reload(keys, routes)
      .then(
        () => {
          if (keySet !== lastKeys) log.info({ keys: keys.length }, "nats-server reloaded its members");
          if (routeSet !== lastRoutes) log.info({ routes: routes.routes }, "nats-server reloaded its routes");
          lastKeys = keySet;
          lastRoutes = routeSet;
          for (const w of batch) w.resolve();
        },
        (err: unknown) => {
          for (const w of batch) w.reject(err);
        },
      )
      .finally(() => {
        reloading = false;
        if (waiting.length > 0 && timer === undefined) flush();
      });
  };
  const refresh = (waitAtMostMs?: number): Promise<void> => {
    if (closed) return Promise.resolve();
    const done = new Promise<void>((resolve, reject) => waiting.push({ resolve, reject }));
    timer ??= setTimeout(flush, NATS_RELOAD_DEBOUNCE_MS);
    if (waitAtMostMs === undefined) return done;
    return new Promise<void>((resolve, reject) => {
      let late = false;
      const bound = setTimeout(() => {
        late = true;
        resolve();
      }, waitAtMostMs);
      done.then(
        () => {
          clearTimeout(bound);
          resolve();
        },
        (err: unknown) => {
          clearTimeout(bound);
          if (late) log.error({ err }, "nats-server did not take a new member");
          else reject(err);
        },
      );
    });
  };

  let node: MeshNode | undefined;
  let announceTimer: ReturnType<typeof setInterval> | undefined;
  let replyPending = false;
  const announce = (): void => {
    if (closed || node === undefined || server.clusterUrl === undefined) return;
    try {
      node.publish(
        NATS_ROUTE_TOPIC,
        encodeRouteAnnouncement({ routeUrl: server.clusterUrl, certPem: server.caPem }),
      );
      count("route:announced");
    } catch (err) {
      log.warn({ err }, "could not announce this seed's nats route");
    }
  };
  const onBroadcast = (b: DeliveredBroadcast): void => {
    if (b.topic !== NATS_ROUTE_TOPIC || b.sender === opts.ownKeyHex || node === undefined) return;
    const cert = node.trust.certificate(b.sender);
    if (cert === undefined || cert.ring !== 0 || !node.trust.isTrusted(b.sender, Date.now())) {
      count("route:refused-not-a-seed");
      return;
    }
    let learned: boolean;
    try {
      learned = book.learn(b.sender, decodeRouteAnnouncement(b.data));
    } catch (err) {
      if (!(err instanceof BadRouteAnnouncementError)) throw err;
      count("route:refused-malformed");
      return;
    }
    if (!learned) return;
    count("route:learned");
    log.info({ peer: b.sender }, "learned a seed's nats route");
    save();
    refresh().catch((err: unknown) => log.error({ err }, "nats-server did not take a new route"));
    if (!replyPending) {
      replyPending = true;
      setTimeout(() => {
        replyPending = false;
        announce();
      }, NATS_RELOAD_DEBOUNCE_MS);
    }
  };

  return {
    server,
    refresh,
    attach(attached) {
      if (node !== undefined || closed) return;
      node = attached;
      attached.onBroadcast(onBroadcast);
      announce();
      announceTimer = setInterval(announce, NATS_ROUTE_ANNOUNCE_INTERVAL_MS);
      announceTimer.unref();
    },
    counters: () => ({ ...counts }),
    close() {
      closed = true;
      if (timer !== undefined) clearTimeout(timer);
      if (announceTimer !== undefined) clearInterval(announceTimer);
      for (const w of waiting) w.resolve();
      waiting = [];
    },
  };
}

function keySetOf(keys: readonly Uint8Array[]): string {
  return keys
    .map((k) => Buffer.from(k).toString("hex"))
    .sort()
    .join(",");
}
