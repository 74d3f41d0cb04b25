/**
 * Membership sync between real MeshNodes on the memory network: a node kept from hearing a death or a
 * leave by gossip learns it from a sync, long before its own round-robin probing would find out.
 */
import { afterEach, describe, expect, it } from "vitest";
import { decodeFrame, encodeFrame, MessageType, peekEnvelopeType } from "../protocol/index.ts";
import { createMesh, type SimMesh } from "./simulation.ts";
import type { Transport } from "./transport/transport.ts";

const N = 24;
let mesh: SimMesh | undefined;

afterEach(async () => {
  await mesh?.close();
  mesh = undefined;
});

/**
 * Wraps every node's transport so that nothing gossip spreads about deaths reaches `victim()`:
 * Suspect and Dead items with hops to spare are cut out of frames sent to it. (Items with no hops
 * left are handed over point to point: a sync's answer, a reconnect ping's notice.)
 */
function deafTo(victim: () => string | undefined) {
  const dropped = { count: 0 };
  const wrap = (t: Transport): Transport => ({
    address: t.address,
    maxFrameBytes: t.maxFrameBytes,
    send: (to, frame) => {
      if (to !== victim()) return t.send(to, frame);
      const items = decodeFrame(frame);
      const kept = items.filter((i) => {
        const type = peekEnvelopeType(i.envelope);
        const gossiped = i.hops > 0 && (type === MessageType.Dead || type === MessageType.Suspect);
        if (gossiped) dropped.count++;
        return !gossiped;
      });
      if (kept.length === items.length) return t.send(to, frame);
      return kept.length === 0 ? null : t.send(to, encodeFrame(kept));
    },
    onFrame: (handler) => t.onFrame(handler),
    close: () => t.close(),
  });
  return { wrap, dropped };
}

/** A mesh of N syncing every second, whose node `victimIndex` hears no gossiped Suspect or Dead. */
async function meshWithDeafNode(seed: number, victimIndex: number) {
  let victimAddr: string | undefined;
  const deaf = deafTo(() => victimAddr);
  const m = await createMesh({ nodes: N, seed, sync: { syncIntervalMs: 1_000 }, wrapTransport: deaf.wrap });
  mesh = m;
  const victim = m.nodes[victimIndex]!;
  victimAddr = victim.addr;
  return { m, victim, dropped: deaf.dropped };
}

describe("membership sync on a mesh", () => {
  it("a node that missed a death by gossip learns it from a sync, well before its own probes", async () => {
    const { m, victim, dropped } = await meshWithDeafNode(31, 5);
    const gone = m.nodes[17]!;
    m.run(3_000);
    await m.kill(gone.index);
    const othersKnow = () =>
      m.nodes.every((n) => !n.alive || n === victim || n.node.membership.member(gone.id)?.state === "dead");
    m.runUntil(othersKnow, 120_000, 100);
    expect(othersKnow()).toBe(true);
    // Gossip told the victim nothing: it still holds the dead member alive (nor has it probed it).
    expect(dropped.count).toBeGreaterThan(0);
    expect(victim.node.membership.member(gone.id)?.state).toBe("alive");
    expect(victim.node.counters.get("sync:hearsay-confirmed")).toBe(0);

    const learned = () => victim.node.membership.member(gone.id)?.state === "dead";
    const tookMs = m.runUntil(learned, 60_000, 50);
    expect(learned()).toBe(true);
    // One sync interval (1 s at 24 members) for the notice, then one probe (1 s interval) to confirm
    // it. Its own round-robin would reach the member only within a round of 23 probes, then suspect it
    // for at least 5.5 s (suspicionMult 4 × log10 24 × 1 s).
    expect(tookMs).toBeLessThan(5_000);
    expect(victim.node.counters.get("sync:hearsay-confirmed")).toBe(1);
    expect(victim.node.counters.get("sync:hearsay-disproved")).toBe(0);
  });

  it("a node that missed a leave by gossip learns it from a sync, as a leave", async () => {
    const { m, victim } = await meshWithDeafNode(32, 2);
    const leaver = m.nodes[9]!;
    m.run(3_000);
    leaver.node.leave();
    m.run(200);
    await m.kill(leaver.index);
    const othersKnow = () =>
      m.nodes.every((n) => !n.alive || n === victim || n.node.membership.member(leaver.id)?.state === "left");
    m.runUntil(othersKnow, 30_000, 100);
    expect(othersKnow()).toBe(true);
    expect(victim.node.membership.member(leaver.id)?.state).toBe("alive");

    const learned = () => victim.node.membership.member(leaver.id)?.state === "left";
    const tookMs = m.runUntil(learned, 60_000, 50);
    expect(learned()).toBe(true);
    expect(tookMs).toBeLessThan(3_000);
    expect(victim.node.counters.get("sync:taught-left")).toBe(1);
  });

  it("a calm mesh syncs with one small summary each and teaches nothing", async () => {
    mesh = await createMesh({ nodes: N, seed: 33, sync: { syncIntervalMs: 1_000 } });
    const m = mesh;
    m.run(10_500);
    const total = (name: string) => m.nodes.reduce((sum, n) => sum + n.node.counters.get(name), 0);
    // ~10 syncs per node in 10.5 s (the first one staggered within the first second).
    expect(total("sync:digests-sent")).toBeGreaterThanOrEqual(9 * N);
    expect(total("sync:digests-sent")).toBeLessThanOrEqual(11 * N);
    expect(total("sync:digests-received")).toBe(total("sync:digests-sent"));
    expect(total("sync:digests-agreed")).toBe(total("sync:digests-sent"));
    expect(total("sync:full-digests-sent") + total("sync:wants-sent") + total("sync:notices-sent")).toBe(0);
    // A summary is one frame: header 2, item 5, envelope 39 + payload 23 (flags, held, hash, no
    // entries) + signature 64.
    expect(total("sync:bytes-sent")).toBe(133 * total("sync:digests-sent"));
  });
});
