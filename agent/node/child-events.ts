/**
 * Give-ups as the mesh hears them. When a node's Supervisor gives up on a child, the node signs the
 * event (child-protocol.ts) and broadcasts it on CHILD_EVENT_TOPIC; every node on that network — the
 * node's own ring and its parent ring — checks it (a node of ring R or R+1 sent it, it names its
 * sender, its own signature verifies) and keeps the newest MAX_CHILD_EVENTS in the `observations`
 * sublevel, with the signed bytes as received, so that `ringctl child events` verifies each one
 * itself. The node that gave up keeps its own event the same way. Refusals are counted by reason.
 */

import type { Logger } from "pino";
import * as v from "valibot";
import type { Certificate, Identity } from "../../protocol/index.ts";
import type { Counters } from "../../rings/index.ts";
import type { DeliveredBroadcast, MeshNode } from "../mesh-node.ts";
import type { NodeStore } from "../store/store.ts";
import type { ChildGiveUpEvent } from "../supervise/index.ts";
import {
  BadChildEventError,
  CHILD_EVENT_TOPIC,
  type ChildEvent,
  encodeChildEvent,
  verifyChildEvent,
} from "./child-protocol.ts";

/** Key prefix of child events in the `observations` sublevel. */
export const CHILD_EVENT_KEY_PREFIX = "child-event:";
/** How many child events a node keeps (the oldest go first). */
export const MAX_CHILD_EVENTS = 100;

/** One kept event: who sent it, its signed data (base64) and when it arrived here. */
export interface StoredChildEvent {
  readonly sender: string;
  readonly data: string;
  readonly receivedMs: number;
}

const storedSchema = v.strictObject({
  sender: v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/)),
  data: v.pipe(v.string(), v.base64(), v.maxLength(4_096)),
  receivedMs: v.pipe(v.number(), v.safeInteger(), v.minValue(0)),
});

/** The child events a node keeps. */
export class ChildEventLog {
  readonly #store: NodeStore;
  readonly #counters: Counters;
  readonly #ring: number;
  #queue: Promise<unknown> = Promise.resolve();

  /** `ring`: this node's ring; events are taken from nodes of this ring and the next. */
  constructor(store: NodeStore, counters: Counters, ring: number) {
    this.#store = store;
    this.#counters = counters;
    this.#ring = ring;
  }

  /**
   * Check and keep one event from `sender` (hex key), whose certificate is `cert`. Resolves the
   * event, or null after counting why it was refused (`rejected:child-event-<reason>`).
   */
  record(
    sender: string,
    cert: Certificate | undefined,
    data: Uint8Array,
    nowMs: number,
  ): Promise<ChildEvent | null> {
    const refuse = (reason: string) => {
      this.#counters.inc(`rejected:child-event-${reason}`);
      return Promise.resolve(null);
    };
    if (cert === undefined || !cert.roles.includes("node")) return refuse("not-a-node");
    if (cert.ring === this.#ring - 1) {
      this.#counters.inc("child-events-of-parent-ring-ignored"); // its own parents keep those
      return Promise.resolve(null);
    }
    if (cert.ring !== this.#ring && cert.ring !== this.#ring + 1) return refuse("not-our-ring");
    let event: ChildEvent;
    try {
      event = verifyChildEvent(data, sender);
    } catch (err) {
      if (err instanceof BadChildEventError) return refuse("malformed");
      throw err;
    }
    const run = this.#queue.then(() => this.#keep(sender, event, data, nowMs));
    this.#queue = run.catch(() => undefined);
    return run.then(() => event);
  }

  /** The kept events, newest first, as stored (ringctl verifies them). */
  async list(): Promise<StoredChildEvent[]> {
    const rows = await this.#store.listJson("observations", CHILD_EVENT_KEY_PREFIX, storedSchema);
    return rows.map(([, value]) => value).reverse();
  }

  async #keep(sender: string, event: ChildEvent, data: Uint8Array, nowMs: number): Promise<void> {
    const key = `${CHILD_EVENT_KEY_PREFIX}${String(event.atMs).padStart(16, "0")}:${sender}:${event.child}`;
    const value: StoredChildEvent = { sender, data: Buffer.from(data).toString("base64"), receivedMs: nowMs };
    await this.#store.putJson("observations", key, value);
    const keys = (await this.#store.listJson("observations", CHILD_EVENT_KEY_PREFIX, v.unknown())).map(
      ([k]) => k,
    );
    const excess = keys.slice(0, Math.max(0, keys.length - MAX_CHILD_EVENTS));
    if (excess.length > 0)
      await this.#store.batch(excess.map((k) => ({ type: "del", sublevel: "observations", key: k })));
    this.#counters.inc("child-events");
  }
}

/**
 * Hand `node`'s child-event broadcasts to `log`. MeshNode keeps one broadcast handler, so this takes
 * the first `onBroadcast` and routes by topic: the previous handler (the NATS link's, attached before
 * or after) still gets every other topic.
 */
export function listenChildEvents(
  node: MeshNode,
  topic: string,
  onEvent: (b: DeliveredBroadcast) => void,
): void {
  const others = new Set<(b: DeliveredBroadcast) => void>();
  node.onBroadcast((b) => {
    if (b.topic === topic) onEvent(b);
    else for (const handler of others) handler(b);
  });
  // Later registrations (the NATS link attaches after the daemon wires this) join instead of replacing.
  node.onBroadcast = (handler) => {
    others.add(handler);
  };
}

/** What wireChildEvents needs of the daemon. */
export interface ChildEventsHost {
  readonly node: MeshNode;
  readonly store: NodeStore;
  readonly counters: Counters;
  readonly log: Logger;
  readonly identity: Identity;
  readonly selfCert: Certificate;
  readonly info: { readonly nodeKey: string };
  /** The network this node hosts for its children (ring ≥ 1 issuers): their give-ups come on it. */
  readonly childNetwork?: { readonly node: MeshNode } | undefined;
}

/** A daemon's child events: the kept log, and what to do when its own Supervisor gives up. */
export interface ChildEvents extends Pick<ChildEventLog, "list"> {
  /** Sign and broadcast a give-up of this node's Supervisor, and keep it here too. */
  gaveUp(event: ChildGiveUpEvent): void;
}

/** Listen for child events on the daemon's node and keep them; returns the daemon's ChildEvents. */
export function wireChildEvents(host: ChildEventsHost): ChildEvents {
  const { node, log } = host;
  const kept = new ChildEventLog(host.store, host.counters, host.selfCert.ring);
  const keep = (sender: string, cert: Certificate | undefined, data: Uint8Array) =>
    kept
      .record(sender, cert, data, Date.now())
      .then(
        (e) => e !== null && sender !== host.info.nodeKey && log.warn({ ...e }, "a node gave up on a child"),
      )
      .catch((err: unknown) => log.error({ err }, "could not keep a child event"));
  for (const network of [node, host.childNetwork?.node]) {
    if (network === undefined) continue;
    listenChildEvents(
      network,
      CHILD_EVENT_TOPIC,
      (b) => void keep(b.sender, network.trust.certificate(b.sender), b.data),
    );
  }
  return {
    list: () => kept.list(),
    gaveUp(e) {
      log.warn({ ...e }, "gave up on a child");
      const { name: child, strategy, reason, restarts, atMs } = e;
      const data = encodeChildEvent(host.identity, { child, strategy, reason, restarts, atMs });
      try {
        node.publish(CHILD_EVENT_TOPIC, data);
      } catch (err) {
        log.error({ err }, "could not publish a child event");
      }
      void keep(host.info.nodeKey, host.selfCert, data);
    },
  };
}
