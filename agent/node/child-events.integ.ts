/**
 * ChildEventLog on a real store: which give-ups a node keeps (signed by a node of its ring or the
 * next, naming their sender), which it refuses and counts, and that it keeps only the newest
 * MAX_CHILD_EVENTS, newest first, as received.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type Certificate, generateIdentity, keyHex, type Role } from "../../protocol/index.ts";
import { Counters } from "../../rings/index.ts";
import { type NodeStore, openStore } from "../store/store.ts";
import { ChildEventLog, MAX_CHILD_EVENTS } from "./child-events.ts";
import { encodeChildEvent, verifyChildEvent } from "./child-protocol.ts";

const ring1 = generateIdentity(new Uint8Array(32).fill(5));
const cert = (ring: 0 | 1 | 2, roles: Role[] = ["node"]): Certificate => ({
  subject: ring1.publicKey,
  issuer: ring1.publicKey,
  ring,
  roles,
  compartment: [],
  tiers: [],
  serial: 1,
  notBeforeMs: 0,
  expiresMs: Number.MAX_SAFE_INTEGER,
});
const event = (atMs: number, child = "web") =>
  encodeChildEvent(ring1, { child, strategy: "proc", reason: "exited", restarts: 2, atMs });

let dir: string;
let store: NodeStore;
let counters: Counters;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "enjin-child-events-"));
  store = await openStore(dir);
  counters = new Counters();
});
afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

describe("ChildEventLog", () => {
  it("keeps a ring-1 node's event at a ring-0 node, as signed, and refuses or ignores the rest", async () => {
    const log = new ChildEventLog(store, counters, 0);
    const sender = keyHex(ring1.publicKey);
    expect(await log.record(sender, cert(1), event(1_000), 5_000)).toMatchObject({
      child: "web",
      atMs: 1_000,
    });
    expect(await log.record(sender, cert(1, ["operator"]), event(2_000), 5_000)).toBeNull();
    expect(await log.record(sender, undefined, event(2_000), 5_000)).toBeNull();
    expect(await log.record(sender, cert(2), event(2_000), 5_000)).toBeNull();
    const other = keyHex(generateIdentity().publicKey);
    expect(await log.record(other, cert(1), event(2_000), 5_000)).toBeNull(); // names another sender
    expect(await log.record(sender, cert(1), new TextEncoder().encode("{}"), 5_000)).toBeNull();
    expect(counters.snapshot()).toMatchObject({
      "rejected:child-event-not-a-node": 2,
      "rejected:child-event-not-our-ring": 1,
      "rejected:child-event-malformed": 2,
      "child-events": 1,
    });
    // A ring-1 node hears ring-0 events on its parent's network, and leaves them to ring 0.
    expect(
      await new ChildEventLog(store, counters, 1).record(sender, cert(0), event(3_000), 5_000),
    ).toBeNull();
    expect(counters.snapshot()["child-events-of-parent-ring-ignored"]).toBe(1);
    const kept = await log.list();
    expect(kept).toHaveLength(1);
    expect(kept[0]).toMatchObject({ sender, receivedMs: 5_000 });
    expect(verifyChildEvent(new Uint8Array(Buffer.from(kept[0]!.data, "base64")), sender).atMs).toBe(1_000);
  });

  it("keeps the newest MAX_CHILD_EVENTS, newest first", async () => {
    const log = new ChildEventLog(store, counters, 1);
    const sender = keyHex(ring1.publicKey);
    const all = Array.from({ length: MAX_CHILD_EVENTS + 5 }, (_, i) => i);
    await Promise.all(all.map((i) => log.record(sender, cert(1), event(10_000 + i, `c${i}`), 20_000)));
    const kept = await log.list();
    expect(kept).toHaveLength(MAX_CHILD_EVENTS);
    const times = kept.map(
      (k) => verifyChildEvent(new Uint8Array(Buffer.from(k.data, "base64")), sender).atMs,
    );
    expect(times[0]).toBe(10_000 + MAX_CHILD_EVENTS + 4);
    expect(times.at(-1)).toBe(10_005);
  });
});
