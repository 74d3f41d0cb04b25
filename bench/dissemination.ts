/**
 * Dissemination benchmark: virtual time for one signed broadcast to reach 99.9% of N nodes, with
 * gossip every 200 ms and fanout 3 — the settings of Serf's published convergence simulator — so
 * the two can stand side by side.
 *
 * Each node is the real `rings/` Gossip state machine (eager push, transmit-limited lazy gossip,
 * anti-entropy) fed the way MeshNode feeds it: a frame's item is dropped if already seen, otherwise
 * its signature is really verified (sodium-native) before `accepted`. The network is simulated on a
 * VirtualClock: one-way latency `latencyMs` + uniform jitter, no loss unless asked. Membership is not
 * simulated (every node knows every other, as in a converged mesh), which is what lets 10,000 nodes
 * fit in one process; test/sim/mesh.sim.ts shows the same dissemination with full MeshNodes at 1,000.
 *
 * Two modes: `eager` (enjin's default for application broadcasts) and `lazy` (the message only
 * rides the gossip rounds, as in memberlist/Serf — enjin's own treatment of membership messages).
 *
 * Run directly to print JSON: `npx tsx bench/dissemination.ts [nodes…]`.
 */
import { pathToFileURL } from "node:url";
import { VirtualClock } from "../agent/virtual-clock.ts";
import {
  encodeFrame,
  encodePayload,
  envelopeIdKey,
  generateIdentity,
  MessageType,
  openEnvelope,
  sealEnvelope,
} from "../protocol/index.ts";
import {
  type BroadcastItem,
  defaultGossipConfig,
  Gossip,
  type GossipAction,
  randomInt,
  seededRng,
} from "../rings/index.ts";

/** Options of one dissemination run. */
export interface DisseminationOptions {
  readonly nodes: number;
  readonly seed?: number;
  /** "eager": push on receipt, then lazy gossip; "lazy": gossip rounds only (Serf-like). */
  readonly mode?: "eager" | "lazy";
  readonly gossipIntervalMs?: number;
  readonly fanout?: number;
  /** One-way network latency (default 1 ms) plus uniform jitter in [0, jitterMs) (default 2 ms). */
  readonly latencyMs?: number;
  readonly jitterMs?: number;
  /** Probability a frame is lost (default 0). */
  readonly lossRate?: number;
  /** Give up after this much virtual time (default 30 s). */
  readonly maxMs?: number;
}

/** What one run observed. */
export interface DisseminationResult {
  readonly nodes: number;
  readonly mode: "eager" | "lazy";
  /** Virtual ms from publish until 50%, 99% and 99.9% of the nodes held the message (null: never). */
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
  readonly p999Ms: number | null;
  readonly allMs: number | null;
  /** Signature checks made in all (one per node that received it: duplicates are dropped first). */
  readonly verifications: number;
  /** Item copies that arrived at a node that already held the message. */
  readonly duplicates: number;
  /** Frames sent in all. */
  readonly frames: number;
  /** Wall-clock ms the simulation took. */
  readonly wallMs: number;
}

/** Simulate one broadcast through `nodes` gossiping nodes. */
export function simulateDissemination(opts: DisseminationOptions): DisseminationResult {
  const wallStart = performance.now();
  const n = opts.nodes;
  const mode = opts.mode ?? "eager";
  const latencyMs = opts.latencyMs ?? 1;
  const jitterMs = opts.jitterMs ?? 2;
  const lossRate = opts.lossRate ?? 0;
  const maxMs = opts.maxMs ?? 30_000;
  const rng = seededRng(opts.seed ?? 1);
  const clock = new VirtualClock({ startMs: 0 });
  const config = {
    ...defaultGossipConfig(),
    gossipIntervalMs: opts.gossipIntervalMs ?? 200,
    fanout: opts.fanout ?? 3,
    // Lazy mode publishes in the membership lane, which with this off is gossiped only in rounds.
    eagerPushMembership: false,
  };
  const ids = Array.from({ length: n }, (_, i) => `n${i}`);
  const nodes = ids.map((id, i) => {
    const g = new Gossip(id, config, seededRng((opts.seed ?? 1) * 7_919 + i));
    g.handle({ type: "peers", peers: ids }, 0);
    return g;
  });
  const index = new Map(ids.map((id, i) => [id, i]));
  const reachedAtMs: (number | undefined)[] = new Array(n);
  let verifications = 0;
  let duplicates = 0;
  let frames = 0;
  const priority = mode === "eager" ? ("app" as const) : ("membership" as const);

  const deliver = (to: number, from: string, items: BroadcastItem[]): void => {
    const g = nodes[to]!;
    for (const item of items) {
      const id = envelopeIdKey(item.envelope);
      if (id === null) continue;
      if (g.hasSeen(id)) {
        duplicates++;
        continue;
      }
      verifications++;
      openEnvelope(item.envelope); // throws if the signature does not verify
      reachedAtMs[to] ??= clock.now();
      act(
        to,
        g.handle(
          { type: "accepted", id, envelope: item.envelope, hops: item.hops, from, priority },
          clock.now(),
        ),
      );
    }
    act(to, g.handle({ type: "flush" }, clock.now()));
  };

  const send = (run: () => void): void => {
    frames++;
    if (lossRate > 0 && rng() < lossRate) return;
    clock.setTimer(latencyMs + (jitterMs > 0 ? rng() * jitterMs : 0), run);
  };

  const act = (self: number, actions: GossipAction[]): void => {
    const me = ids[self]!;
    for (const a of actions) {
      const to = index.get(a.to);
      if (to === undefined) continue;
      if (a.type === "send") {
        encodeFrame(a.items); // real framing cost; the simulated link carries the items
        send(() => deliver(to, me, a.items));
      } else if (a.type === "send-digest") {
        send(() => act(to, nodes[to]!.handle({ type: "digest", from: me, ids: a.ids }, clock.now())));
      } else {
        send(() => act(to, nodes[to]!.handle({ type: "want", from: me, ids: a.ids }, clock.now())));
      }
    }
    armTick(self);
  };

  const armed: (number | undefined)[] = new Array(n);
  const armTick = (i: number): void => {
    const wake = Math.max(nodes[i]!.nextWakeMs(), clock.now());
    if (armed[i] !== undefined && armed[i]! <= wake) return;
    armed[i] = wake;
    clock.setTimer(wake - clock.now(), () => {
      if (armed[i] !== wake) return;
      armed[i] = undefined;
      act(i, nodes[i]!.handle({ type: "tick" }, clock.now()));
    });
  };
  for (let i = 0; i < n; i++) armTick(i);
  clock.advance(1_000); // ticks settle into their random phases

  const origin = randomInt(rng, n);
  const identity = generateIdentity(new Uint8Array(32).fill(3));
  const envelope = sealEnvelope(
    identity,
    MessageType.Broadcast,
    encodePayload(MessageType.Broadcast, { topic: "bench", data: new Uint8Array(64), sentAtMs: clock.now() }),
  );
  const publishedAtMs = clock.now();
  reachedAtMs[origin] = publishedAtMs;
  const id = envelopeIdKey(envelope)!;
  act(origin, nodes[origin]!.handle({ type: "publish", id, envelope, priority }, publishedAtMs));
  act(origin, nodes[origin]!.handle({ type: "flush" }, publishedAtMs));

  let reached = 1;
  while (clock.now() - publishedAtMs < maxMs) {
    clock.advance(5);
    reached = reachedAtMs.reduce<number>((c, t) => c + (t === undefined ? 0 : 1), 0);
    if (reached === n) break;
  }
  const times = reachedAtMs.filter((t): t is number => t !== undefined).map((t) => t - publishedAtMs);
  times.sort((a, b) => a - b);
  const quantile = (q: number): number | null => {
    const need = Math.ceil(q * n);
    return times.length >= need ? Math.round(times[need - 1]!) : null;
  };
  return {
    nodes: n,
    mode,
    p50Ms: quantile(0.5),
    p99Ms: quantile(0.99),
    p999Ms: quantile(0.999),
    allMs: reached === n ? Math.round(times[n - 1]!) : null,
    verifications,
    duplicates,
    frames,
    wallMs: Math.round(performance.now() - wallStart),
  };
}

/** Serf's published convergence-simulator figures (200 ms interval, fanout 3): time to 99.9%. */
export const SERF_SIMULATOR_P999_MS: Readonly<Record<number, number>> = { 1000: 1_800, 10000: 2_200 };

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const sizes = process.argv.slice(2).map(Number);
  const results = [];
  for (const nodes of sizes.length > 0 ? sizes : [1_000, 10_000]) {
    for (const mode of ["eager", "lazy"] as const) results.push(simulateDissemination({ nodes, mode }));
  }
  console.log(JSON.stringify(results, null, 2));
}
