/**
 * Many Gossip machines on a simulated network: a time-ordered event loop with per-message latency,
 * random loss and partitions, all driven by seeded RNGs, so each run replays exactly.
 */
import { describe, expect, it } from "vitest";
import { defaultGossipConfig, Gossip, type GossipAction, type GossipConfig } from "./gossip.ts";
import { type Rng, randomInt, seededRng } from "./rng.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

interface SimEvent {
  atMs: number;
  seq: number;
  run: () => void;
}

/** A binary min-heap on (atMs, seq): same-time events run in the order they were scheduled. */
class EventQueue {
  private readonly heap: SimEvent[] = [];
  private seq = 0;
  push(atMs: number, run: () => void): void {
    const h = this.heap;
    h.push({ atMs, seq: this.seq++, run });
    for (let i = h.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (!before(h[i]!, h[parent]!)) break;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
  }
  pop(): SimEvent | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && before(h[l]!, h[m]!)) m = l;
        if (r < h.length && before(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
  peekMs(): number {
    return this.heap[0]?.atMs ?? Number.POSITIVE_INFINITY;
  }
}
const before = (a: SimEvent, b: SimEvent) => a.atMs < b.atMs || (a.atMs === b.atMs && a.seq < b.seq);

interface SimOptions {
  nodes: number;
  lossRate: number;
  seed: number;
  config?: Partial<GossipConfig>;
  minLatencyMs?: number;
  maxLatencyMs?: number;
}

class Sim {
  nowMs = 0;
  readonly names: string[];
  readonly gossip = new Map<string, Gossip>();
  /** Per node: message id → time it was first applied. */
  readonly applied = new Map<string, Map<string, number>>();
  private readonly events = new EventQueue();
  private readonly net: Rng;
  /** When set, messages between these groups are lost. */
  partition: ((from: string, to: string) => boolean) | null = null;
  lossRate: number;
  sent = 0;
  dropped = 0;
  duplicates = 0;

  constructor(private readonly opts: SimOptions) {
    this.net = seededRng(opts.seed);
    this.lossRate = opts.lossRate;
    this.names = Array.from({ length: opts.nodes }, (_, i) => `n${i}`);
    const config = { ...defaultGossipConfig(), ...opts.config };
    this.names.forEach((name, i) => {
      this.gossip.set(name, new Gossip(name, config, seededRng(opts.seed * 1_000 + i)));
      this.applied.set(name, new Map());
    });
    this.setPeers(() => this.names);
    for (const name of this.names) this.events.push(0, () => this.tick(name));
  }

  /** Tells every node its live peers, as membership would. */
  setPeers(peersOf: (name: string) => string[]): void {
    for (const name of this.names)
      this.node(name).handle({ type: "peers", peers: peersOf(name) }, this.nowMs);
  }

  publish(name: string, id: string): void {
    this.applied.get(name)?.set(id, this.nowMs);
    const g = this.node(name);
    this.dispatch(
      name,
      g.handle({ type: "publish", id, envelope: enc.encode(id), priority: "app" }, this.nowMs),
    );
  }

  runUntil(endMs: number): void {
    while (this.events.peekMs() <= endMs) {
      const event = this.events.pop()!;
      this.nowMs = event.atMs;
      event.run();
    }
    this.nowMs = endMs;
  }

  /** How many nodes have applied `id`. */
  reach(id: string): number {
    return this.names.filter((n) => this.applied.get(n)?.has(id)).length;
  }

  /** Time (ms after `fromMs`) by which every node had applied `id`, or Infinity. */
  fullReachMs(id: string, fromMs: number): number {
    let last = 0;
    for (const n of this.names) {
      const at = this.applied.get(n)?.get(id);
      if (at === undefined) return Number.POSITIVE_INFINITY;
      last = Math.max(last, at);
    }
    return last - fromMs;
  }

  private node(name: string): Gossip {
    return this.gossip.get(name)!;
  }

  private tick(name: string): void {
    const g = this.node(name);
    this.dispatch(name, g.handle({ type: "tick" }, this.nowMs));
    this.events.push(Math.max(this.nowMs + 1, g.nextWakeMs()), () => this.tick(name));
  }

  private dispatch(from: string, actions: GossipAction[]): void {
    for (const action of actions) {
      this.sent++;
      if (this.partition?.(from, action.to) || this.net() < this.lossRate) {
        this.dropped++;
        continue;
      }
      const min = this.opts.minLatencyMs ?? 1;
      const latencyMs = min + randomInt(this.net, (this.opts.maxLatencyMs ?? 10) - min + 1);
      this.events.push(this.nowMs + latencyMs, () => this.receive(from, action));
    }
  }

  /** The runtime's ingest path: seen? drop : verify, apply, report accepted. */
  private receive(from: string, action: GossipAction): void {
    const to = action.to;
    const g = this.node(to);
    if (action.type === "send-digest") {
      this.dispatch(to, g.handle({ type: "digest", from, ids: action.ids }, this.nowMs));
    } else if (action.type === "send-want") {
      this.dispatch(to, g.handle({ type: "want", from, ids: action.ids }, this.nowMs));
    } else {
      for (const { envelope, hops } of action.items) {
        const id = dec.decode(envelope);
        if (g.hasSeen(id)) {
          this.duplicates++;
          continue;
        }
        this.applied.get(to)?.set(id, this.nowMs);
        const accepted = { type: "accepted", id, envelope, hops, from, priority: "app" } as const;
        this.dispatch(to, g.handle(accepted, this.nowMs));
      }
    }
  }
}

describe("gossip on a simulated 200-node network", () => {
  it("one publish reaches all 200 with no loss, within a few network latencies", () => {
    const sim = new Sim({ nodes: 200, lossRate: 0, seed: 1, config: { antiEntropyIntervalMs: 1e9 } });
    sim.runUntil(1_000);
    sim.publish("n0", "hello");
    sim.runUntil(3_000);
    expect(sim.reach("hello")).toBe(200);
    // Serf would need about one 200 ms tick per hop, ~1 s for 200 nodes.
    expect(sim.fullReachMs("hello", 1_000)).toBeLessThan(500);
  });

  it("eager push alone (no queue, no anti-entropy) covers the bulk of the mesh in ~100 ms", () => {
    const config = { retransmitMult: 1, antiEntropyIntervalMs: 1e9 }; // limit 3 = the eager sends
    const sim = new Sim({ nodes: 200, lossRate: 0, seed: 4, config });
    sim.runUntil(1_000);
    sim.publish("n0", "hello");
    sim.runUntil(1_100);
    // Push-once with fanout 3 leaves ~e^-3 of the nodes out; the queue and anti-entropy finish the job.
    expect(sim.reach("hello")).toBeGreaterThan(180);
  });

  function lossRun(config: Partial<GossipConfig>) {
    const sim = new Sim({ nodes: 200, lossRate: 0.1, seed: 2, config });
    sim.runUntil(1_000);
    const ids = Array.from({ length: 20 }, (_, i) => `m${i}`);
    for (const [i, id] of ids.entries()) sim.publish(`n${(i * 37) % 200}`, id);
    sim.runUntil(2_000);
    const reachedBefore = ids.reduce((sum, id) => sum + sim.reach(id), 0);
    sim.runUntil(15_000);
    const repaired = [...sim.gossip.values()].reduce((s, g) => s + g.stats().repairedItemsSent, 0);
    return { sim, ids, reachedBefore, repaired };
  }

  it("with 10% loss, every node gets every message once anti-entropy has run", () => {
    const { sim, ids, reachedBefore } = lossRun({});
    // The retransmit queue delivers nearly everything within a second; anti-entropy the rest.
    expect(reachedBefore).toBeGreaterThan(0.99 * ids.length * 200);
    for (const id of ids) expect(sim.reach(id)).toBe(200);
  });

  it("with 10% loss and eager push only (no retransmits), anti-entropy closes the gap", () => {
    // retransmitMult 1 gives a limit of 3 = the eager sends: nothing is queued.
    const { sim, ids, reachedBefore, repaired } = lossRun({ retransmitMult: 1 });
    expect(reachedBefore).toBeLessThan(ids.length * 200);
    expect(repaired).toBeGreaterThan(0);
    for (const id of ids) expect(sim.reach(id)).toBe(200);
  });

  it("two halves partitioned, each publishing, then healed: every node ends with every message", () => {
    const sim = new Sim({ nodes: 200, lossRate: 0.01, seed: 3 });
    const half = (name: string) => Number(name.slice(1)) < 100;
    sim.runUntil(500);
    sim.partition = (from, to) => half(from) !== half(to);
    sim.setPeers((name) => sim.names.filter((n) => half(n) === half(name))); // membership declares the other side dead
    const left = Array.from({ length: 10 }, (_, i) => `left${i}`);
    const right = Array.from({ length: 10 }, (_, i) => `right${i}`);
    for (const [i, id] of left.entries()) sim.publish(`n${i * 9}`, id);
    for (const [i, id] of right.entries()) sim.publish(`n${100 + i * 9}`, id);
    sim.runUntil(20_000);
    for (const id of left) expect(sim.reach(id)).toBe(100);
    for (const id of right) expect(sim.reach(id)).toBe(100);

    sim.partition = null;
    sim.setPeers(() => sim.names);
    const healedAtMs = sim.nowMs;
    sim.runUntil(healedAtMs + 1_500);
    const all = [...left, ...right];
    const bulk = all.reduce((sum, id) => sum + sim.reach(id), 0) / (all.length * 200);
    sim.runUntil(healedAtMs + 10_000);
    // Repaired envelopes are re-flooded into the side that lacked them, so the bulk catches up within
    // about one anti-entropy interval; the stragglers are pulled by later digests.
    expect(bulk).toBeGreaterThan(0.98);
    for (const id of all) expect(sim.reach(id)).toBe(200);
  });
});
