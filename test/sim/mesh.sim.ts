/**
 * A thousand real MeshNodes on the memory network, on virtual time: every message signed by its
 * origin and checked at every node. Each scenario asserts an outcome the design promises.
 *
 * Scenarios whose point is convergence rather than CPU share one signature-verdict memo across the
 * simulated nodes (`sharedVerifyMemo`: identical outcomes, a fraction of the CPU); the first one
 * checks every signature at every node, as real machines would. The 50/50 partition of the same
 * thousand nodes has a file of its own (partition.sim.ts): it is the costliest scenario.
 */
import { afterEach, describe, expect, it } from "vitest";
import { createMesh, DEFAULT_SUSPICION_JITTER_FRACTION, type SimMesh } from "../../agent/index.ts";
import {
  encodeFrame,
  encodePayload,
  envelopeIdKey,
  generateIdentity,
  issueRevocation,
  MessageType,
  SIGNATURE_BYTES,
  sealEnvelope,
} from "../../protocol/index.ts";
import { detectionBoundMs, lanConfig } from "../../rings/index.ts";

const N = 1_000;
/** How a node counts the rogue's garbage frame (version 1, then an item count over the limit). */
const GARBAGE_FRAME_REASON = "rejected:frame-limit-exceeded";
let mesh: SimMesh | undefined;

afterEach(async () => {
  await mesh?.close();
  mesh = undefined;
});

/** True when every live node except `origin` has delivered `id`. */
function everyoneHas(m: SimMesh, id: string, origin: number): boolean {
  return m.nodes.every((n) => !n.alive || n.index === origin || n.delivered.has(id));
}

/** Sum of one counter over the live nodes. */
function total(m: SimMesh, counter: string): number {
  return m.nodes.reduce((sum, n) => sum + n.node.counters.get(counter), 0);
}

describe(`simulated mesh of ${N} nodes`, () => {
  it("a broadcast reaches every node, each checking the signature once and dropping the duplicates unchecked", async () => {
    mesh = await createMesh({ nodes: N, seed: 11, latencyMs: 1, jitterMs: 2 });
    mesh.run(2_000);
    const acceptedBefore = total(mesh, "accepted");
    const id = mesh.nodes[17]!.node.publish("hello", new TextEncoder().encode("world"));
    const tookMs = mesh.runUntil(() => everyoneHas(mesh!, id, 17), 10_000, 5);
    expect(everyoneHas(mesh, id, 17)).toBe(true);
    expect(tookMs).toBeLessThan(2_000);
    for (const n of mesh.nodes) if (n.index !== 17) expect(n.delivered.get(id)).toBeDefined();
    // Nothing honest was refused, and duplicates outnumber deliveries: they were dropped before
    // any verification (ingest counts `duplicate` before it decodes anything).
    const rejected = mesh.nodes.flatMap((n) =>
      Object.keys(n.node.counters.snapshot()).filter((k) => k.startsWith("rejected:")),
    );
    expect(rejected).toEqual([]);
    expect(total(mesh, "duplicate")).toBeGreaterThan(N);
    expect(total(mesh, "accepted") - acceptedBefore).toBeGreaterThanOrEqual(N - 1);
  });

  it("with 10% loss on every link a broadcast still reaches every node, anti-entropy repairing the gaps", async () => {
    mesh = await createMesh({
      nodes: N,
      seed: 12,
      latencyMs: 1,
      jitterMs: 2,
      lossRate: 0.1,
      sharedVerifyMemo: true,
    });
    mesh.run(2_000);
    const ids = [3, 400, 777].map((i) => mesh!.nodes[i]!.node.publish("lossy", new Uint8Array([i % 256])));
    const origins = [3, 400, 777];
    const all = () => ids.every((id, k) => everyoneHas(mesh!, id, origins[k]!));
    mesh.runUntil(all, 30_000, 50);
    expect(all()).toBe(true);
    const lost = mesh.net.stats().droppedByLoss;
    expect(lost).toBeGreaterThan(0);
    const repaired = mesh.nodes.reduce((sum, n) => sum + n.node.gossip.stats().repairedItemsSent, 0);
    expect(repaired).toBeGreaterThan(0);
  });

  it("a killed node is declared dead by every member within the bound derived from the parameters", async () => {
    mesh = await createMesh({ nodes: N, seed: 14, latencyMs: 1, jitterMs: 2, sharedVerifyMemo: true });
    const m = mesh;
    m.run(3_000);
    const victim = m.nodes[42]!;
    await m.kill(42);
    const deadEverywhere = () =>
      m.nodes.every((n) => !n.alive || n.node.membership.member(victim.id)?.state === "dead");
    const tookMs = m.runUntil(deadEverywhere, 200_000, 100);
    expect(deadEverywhere()).toBe(true);
    // The bound of rings/membership-config.ts (the daemon's settings) with a one-in-a-million miss
    // allowance and two seconds for suspect/dead gossip to spread through the 200 ms gossip rounds.
    const config = { ...lanConfig(), suspicionJitterFraction: DEFAULT_SUSPICION_JITTER_FRACTION };
    const boundMs = detectionBoundMs(config, N, { missProbability: 1e-6, disseminationMs: 2_000 });
    expect(tookMs).toBeLessThanOrEqual(boundMs);
    // Nobody else died on the way.
    for (const n of m.nodes) {
      if (!n.alive) continue;
      const dead = n.node.membership.members().filter((x) => x.state === "dead");
      expect(dead.map((x) => x.id)).toEqual([victim.id]);
    }
  });

  it("at 10% loss with one member slowed down, no node is declared dead", async () => {
    mesh = await createMesh({
      nodes: N,
      seed: 15,
      latencyMs: 1,
      jitterMs: 2,
      lossRate: 0.1,
      sharedVerifyMemo: true,
    });
    const m = mesh;
    const deaths: string[] = [];
    for (const n of m.nodes) {
      n.node.onMemberChange((id, state) => {
        if (state === "dead") deaths.push(`${n.index} declared ${id.slice(0, 8)} dead`);
      });
    }
    const slowed = m.nodes[99]!;
    m.net.slow(slowed.addr, 100);
    m.run(30_000);
    expect(deaths).toEqual([]);
    // The slowed node was probed and answered throughout: everyone still holds it alive or, at
    // worst, suspect and about to be refuted.
    const views = m.nodes.filter((n) => n !== slowed).map((n) => n.node.membership.member(slowed.id)?.state);
    expect(views.every((s) => s === "alive" || s === "suspect")).toBe(true);
  });

  it("a rogue injecting forged, unsigned, replayed, revoked and unannounced messages is refused everywhere, each counted with its reason", async () => {
    mesh = await createMesh({ nodes: N, seed: 16, latencyMs: 1, jitterMs: 2, sharedVerifyMemo: true });
    const m = mesh;
    m.run(2_000);
    const enc = (topic: string, sentAtMs: number) =>
      encodePayload(MessageType.Broadcast, { topic, data: new Uint8Array([6, 6, 6]), sentAtMs });

    // Revoke member 7 through the mesh: the root signs, one node takes it in, gossip spreads it.
    const revoked = m.nodes[7]!;
    const revocation = issueRevocation(m.root, {
      subject: revoked.identity.publicKey,
      issuer: m.root.publicKey,
      epoch: 1,
      atMs: m.clock.now(),
      reason: "compromised",
    });
    expect(m.nodes[0]!.node.relay(revocation)).toBe(true);
    m.runUntil(() => m.nodes.every((n) => n.node.trust.isRevoked(revoked.id)), 10_000, 50);
    expect(m.nodes.every((n) => n.node.trust.isRevoked(revoked.id))).toBe(true);

    // An honest broadcast by member 3, whose bytes the rogue captures to replay.
    const honest = sealEnvelope(m.nodes[3]!.identity, MessageType.Broadcast, enc("honest", m.clock.now()));
    const honestId = envelopeIdKey(honest)!;
    expect(m.nodes[3]!.node.relay(honest)).toBe(true);
    m.runUntil(() => everyoneHas(m, honestId, 3), 10_000, 10);
    const before = m.nodes.map((n) => n.node.counters.snapshot());

    const rogue = await m.net.memory()({ listen: "rogue" });
    const stranger = generateIdentity(new Uint8Array(32).fill(0xee));
    const now = m.clock.now();
    // Forged: claims member 1's key, signed by the stranger.
    const forged = sealEnvelope(stranger, MessageType.Broadcast, enc("forged", now));
    forged.set(m.nodes[1]!.identity.publicKey, 3);
    // Unsigned: member 2's key and an all-zero signature.
    const unsigned = sealEnvelope(m.nodes[2]!.identity, MessageType.Broadcast, enc("unsigned", now));
    unsigned.fill(0, unsigned.length - SIGNATURE_BYTES);
    // Replayed, from longer ago than the seen-set remembers: member 4 really signed it, 31 min ago.
    const stale = sealEnvelope(m.nodes[4]!.identity, MessageType.Broadcast, enc("stale", now - 31 * 60_000));
    // From the revoked member, properly signed.
    const fromRevoked = sealEnvelope(revoked.identity, MessageType.Broadcast, enc("revoked", now));
    // From a key nobody announced, properly signed.
    const unannounced = sealEnvelope(stranger, MessageType.Broadcast, enc("unannounced", now));
    const honestNodes = m.nodes.filter((n) => n !== revoked);
    for (const target of honestNodes) {
      const items = [forged, unsigned, honest, stale, fromRevoked, unannounced].map((envelope) => ({
        hops: 3,
        envelope,
      }));
      expect(rogue.send(target.addr, encodeFrame(items))).toBeNull();
      expect(rogue.send(target.addr, new Uint8Array([1, 200, 7, 7, 7]))).toBeNull(); // garbage frame
    }
    m.run(3_000);

    for (const [i, n] of m.nodes.entries()) {
      if (n === revoked) continue;
      const delta = (key: string) => n.node.counters.get(key) - (before[i]![key] ?? 0);
      expect(delta("rejected:bad-signature")).toBeGreaterThanOrEqual(2); // forged, unsigned
      expect(delta("rejected:stale-broadcast")).toBeGreaterThanOrEqual(1);
      expect(delta("rejected:revoked-sender")).toBeGreaterThanOrEqual(1);
      expect(delta("rejected:unknown-sender")).toBeGreaterThanOrEqual(1);
      expect(delta(GARBAGE_FRAME_REASON)).toBe(1);
      expect(delta("duplicate")).toBeGreaterThanOrEqual(1); // the replay, dropped before any check
      expect([...n.delivered.keys()]).toEqual([honestId]); // only the honest broadcast, once
    }
    // And the mesh keeps working: a new honest broadcast still reaches everyone.
    const after = m.nodes[500]!.node.publish("after", new Uint8Array([2]));
    m.runUntil(() => everyoneHas(m, after, 500), 10_000, 10);
    expect(honestNodes.every((n) => n.index === 500 || n.delivered.has(after))).toBe(true);
  });
});
