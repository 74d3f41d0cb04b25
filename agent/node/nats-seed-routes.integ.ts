/**
 * A seed's reloads on a real nats-server while members join faster than the server reloads: one
 * reload runs at a time, the changes made meanwhile go to the server together in the next, and
 * every refresh resolves only once the server admits the keys it was called for, or, when it may
 * wait only so long (a joiner's admission), once that time is up. A reload is held in flight by
 * letting the seed's calls wait at a gate before they reach the real server (on a loaded machine a
 * reload takes seconds, and every joiner's admission waits for one).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateIdentity, type Identity, keyHex } from "../../protocol/index.ts";
import { eventually } from "../../test/support/eventually.ts";
import { type NatsServer, startNatsServer } from "../nats-server.ts";
import { NatsAuthorizationError, nats, natsMemberPermissions } from "../transport/nats.ts";
import { RoutePeerBook } from "./nats-routes.ts";
import { NATS_RELOAD_DEBOUNCE_MS, seedRoutes } from "./nats-seed-routes.ts";

const MESH = "reloadmesh";
let dir: string;
let server: NatsServer;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "enjin-seed-reloads-"));
  server = await startNatsServer({
    dataDir: join(dir, "nats"),
    allowedKeys: [],
    permissions: natsMemberPermissions(MESH),
    cluster: { trustedPeerCertPems: [] }, // a seed's server always has a route listener
  });
});

afterAll(async () => {
  await server?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

/** A seed's reloads of `members`, each held at a gate until `open()`; `reloaded` counts the keys of each. */
async function gatedSeed(members: readonly Identity[]) {
  let open: () => void = () => undefined;
  let gate = new Promise<void>((resolve) => {
    open = resolve;
  });
  const reloaded: number[] = [];
  const routes = seedRoutes({
    server: {
      ...server,
      async reload(keys, set) {
        reloaded.push(keys.length);
        await gate;
        return server.reload(keys, set);
      },
    },
    book: await RoutePeerBook.load(join(dir, "nats")),
    pinnedPem: undefined,
    isRevoked: () => false,
    ownKeyHex: keyHex(generateIdentity().publicKey),
    allowedKeys: () => members.map((m) => m.publicKey),
    log: pino({ level: "silent" }),
  });
  return {
    routes,
    reloaded,
    open() {
      gate = Promise.resolve();
      open();
    },
  };
}

/** Connect to the server as `who`, and close again; rejects when the server refuses the nkey. */
async function connectAs(who: Identity): Promise<void> {
  const transport = await nats({ servers: server.url, caPem: server.caPem, identity: who, meshId: MESH })({});
  await transport.close();
}

describe("a seed's nats-server reloads while members join", () => {
  it("runs one reload at a time; what changes meanwhile goes in the next, and each refresh waits for its keys", async () => {
    const members: Identity[] = [];
    const { routes, reloaded, open } = await gatedSeed(members);
    try {
      const join = (): Promise<void> => {
        members.push(generateIdentity());
        return routes.refresh();
      };
      const settled: boolean[] = [];
      const track = (p: Promise<void>, i: number) =>
        p.then(() => {
          settled[i] = true;
        });

      const first = track(join(), 0);
      await eventually(() => expect(reloaded).toEqual([1]));
      // Five more join while that reload runs, each after the debounce, so each could flush alone.
      const later: Promise<void>[] = [];
      for (let i = 1; i <= 5; i++) {
        later.push(track(join(), i));
        await new Promise((r) => setTimeout(r, NATS_RELOAD_DEBOUNCE_MS * 2));
      }
      expect(reloaded).toEqual([1]); // still the one, held at the gate
      expect(settled.filter(Boolean)).toEqual([]);
      await expect(connectAs(members[5]!)).rejects.toBeInstanceOf(NatsAuthorizationError);

      open();
      await first;
      await Promise.all(later);
      expect(reloaded).toEqual([1, 6]); // the five together, in one reload
      expect(routes.counters()["nats:reloads"]).toBe(2);
      for (const m of members) await connectAs(m); // every joiner is admitted once its refresh resolved

      // Nothing changed: a refresh (a joiner's second attempt) resolves without a reload.
      await routes.refresh();
      expect(reloaded).toEqual([1, 6]);
    } finally {
      open();
      routes.close();
    }
  });

  it("an admission that may wait only so long is answered while the reload is held; the joiner gets in once it lands", async () => {
    const members: Identity[] = [];
    const { routes, reloaded, open } = await gatedSeed(members);
    try {
      const joiner = generateIdentity();
      members.push(joiner);
      const answered = await Promise.race([
        routes.refresh(200).then(() => "answered"),
        new Promise((r) => setTimeout(() => r("still waiting"), 5_000)),
      ]);
      expect(answered).toBe("answered");
      expect(reloaded).toEqual([1]); // held at the gate
      await expect(connectAs(joiner)).rejects.toBeInstanceOf(NatsAuthorizationError);
      open();
      await eventually(() => connectAs(joiner), { timeoutMs: 10_000, intervalMs: 100 });
    } finally {
      open();
      routes.close();
    }
  });
});
