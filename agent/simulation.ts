/**
 * The simulation harness: N certified nodes on one memory network with a virtual clock, in one
 * process. Every node is a real MeshNode with its own key, trust store, gossip and membership; every
 * message is really signed and really verified. Only the network and the clock are simulated.
 *
 * The root certifies each node at ring 0 (roles: node). Each node holds the other members'
 * certificates as an unverified bundle (shared read-only bytes, as a trust bundle would deliver
 * them) and checks each one the first time it hears from that key.
 */

import {
  type Envelope,
  generateIdentity,
  type Identity,
  issueCertificate,
  keyHex,
  verifyEnvelope,
} from "../protocol/index.ts";
import {
  type GossipConfig,
  type MembershipConfig,
  type MembershipSyncConfig,
  type NodeId,
  seededRng,
} from "../rings/index.ts";
import { MeshNode } from "./mesh-node.ts";
import { type MemoryNetwork, memory, memoryNetwork } from "./transport/memory.ts";
import type { Transport } from "./transport/transport.ts";
import { VirtualClock } from "./virtual-clock.ts";

/** The shape of a simulated mesh. */
export interface SimOptions {
  readonly nodes: number;
  readonly seed: number;
  readonly latencyMs?: number;
  readonly jitterMs?: number;
  readonly lossRate?: number;
  readonly membership?: Partial<MembershipConfig>;
  readonly gossip?: Partial<GossipConfig>;
  readonly sync?: Partial<MembershipSyncConfig>;
  /** Start every node knowing every member (a converged mesh); default true. */
  readonly converged?: boolean;
  /**
   * Share one signature-verdict memo among all nodes (default false: every node verifies every
   * message itself, as it would on its own machine). Outcomes are identical either way — ed25519's
   * verdict on the same bytes is the same at every node — so scenarios whose point is convergence
   * rather than CPU (a 1,000-node partition costs millions of verifications) may turn it on.
   */
  readonly sharedVerifyMemo?: boolean;
  /** Wrap each node's transport (to observe or disturb what a node asks of it); default none. */
  readonly wrapTransport?: (transport: Transport, index: number) => Transport;
}

/** Entries the shared memo holds before it starts over (bounds its memory). */
export const VERIFY_MEMO_LIMIT = 500_000;

/**
 * A signature check that remembers its verdict per exact envelope bytes, for many simulated nodes
 * in one process. Keyed by the whole envelope, so different bytes are always checked afresh.
 */
export function memoizedVerifier(limit = VERIFY_MEMO_LIMIT): (env: Envelope) => boolean {
  const memo = new Map<string, boolean>();
  return (env) => {
    const key = Buffer.from(env.bytes.buffer, env.bytes.byteOffset, env.bytes.byteLength).toString("latin1");
    const known = memo.get(key);
    if (known !== undefined) return known;
    const verdict = verifyEnvelope(env);
    if (memo.size >= limit) memo.clear();
    memo.set(key, verdict);
    return verdict;
  };
}

/** One simulated node and what it observed. */
export interface SimNode {
  readonly index: number;
  readonly identity: Identity;
  readonly id: NodeId;
  readonly addr: string;
  readonly node: MeshNode;
  /** Broadcast id → virtual time it was delivered here. */
  readonly delivered: Map<string, number>;
  alive: boolean;
}

export interface SimMesh {
  readonly clock: VirtualClock;
  readonly net: MemoryNetwork;
  readonly root: Identity;
  readonly nodes: SimNode[];
  /** The certificate envelopes by subject hex (the trust bundle). */
  readonly certificates: Map<string, Uint8Array>;
  /** Advance virtual time by `ms`, running every event due. */
  run(ms: number): void;
  /** Run until `done()` holds (checked every `stepMs`) or `maxMs` passes; returns the virtual ms taken. */
  runUntil(done: () => boolean, maxMs: number, stepMs?: number): number;
  /** Stop a node abruptly (no leave message): its transport closes, as with kill -9. */
  kill(index: number): Promise<void>;
  /** Stop every node. */
  close(): Promise<void>;
}

/** The epoch the virtual clock starts at (certificates are valid around it). */
export const SIM_START_MS = Date.UTC(2026, 0, 1);

/** Deterministic 32-byte seed for node `index` of simulation `seed`. */
export function nodeSeed(seed: number, index: number): Uint8Array {
  const out = new Uint8Array(32);
  const view = new DataView(out.buffer);
  view.setUint32(0, seed >>> 0);
  view.setUint32(4, index >>> 0);
  view.setUint32(8, 0x656e6a69); // "enji"
  return out;
}

/** Build and start a simulated mesh. */
export async function createMesh(opts: SimOptions): Promise<SimMesh> {
  const clock = new VirtualClock({ startMs: SIM_START_MS });
  const net = memoryNetwork({
    clock,
    rng: seededRng(opts.seed ^ 0x5eed),
    latencyMs: opts.latencyMs ?? 1,
    jitterMs: opts.jitterMs ?? 0,
    lossRate: opts.lossRate ?? 0,
  });
  const root = generateIdentity(nodeSeed(opts.seed, 0xffffffff));
  const certificates = new Map<string, Uint8Array>();
  const identities: Identity[] = [];
  for (let i = 0; i < opts.nodes; i++) {
    const identity = generateIdentity(nodeSeed(opts.seed, i));
    identities.push(identity);
    const cert = issueCertificate(root, {
      subject: identity.publicKey,
      issuer: root.publicKey,
      ring: 0,
      roles: ["node"],
      compartment: ["sim", `rack${i % 16}`],
      tiers: [],
      serial: i + 1,
      notBeforeMs: SIM_START_MS - 60_000,
      expiresMs: SIM_START_MS + 365 * 24 * 3_600_000,
    });
    certificates.set(keyHex(identity.publicKey), cert);
  }
  const source = (hex: string) => certificates.get(hex);
  const factory = memory(net);
  const verify = opts.sharedVerifyMemo === true ? memoizedVerifier() : undefined;
  const nodes: SimNode[] = [];
  for (let i = 0; i < opts.nodes; i++) {
    const identity = identities[i]!;
    const bare = await factory({ listen: `n${i}` });
    const transport = opts.wrapTransport?.(bare, i) ?? bare;
    const node = new MeshNode({
      identity,
      ring: 0,
      rootKey: root.publicKey,
      certificates: source,
      transport,
      clock,
      rng: seededRng(opts.seed * 7919 + i),
      ...(opts.membership === undefined ? {} : { membership: opts.membership }),
      ...(opts.gossip === undefined ? {} : { gossip: opts.gossip }),
      ...(opts.sync === undefined ? {} : { sync: opts.sync }),
      ...(verify === undefined ? {} : { verify }),
    });
    const sim: SimNode = {
      index: i,
      identity,
      id: node.id,
      addr: transport.address,
      node,
      delivered: new Map(),
      alive: true,
    };
    node.onBroadcast((b) => {
      if (!sim.delivered.has(b.id)) sim.delivered.set(b.id, clock.now());
    });
    nodes.push(sim);
  }
  const everyone = nodes.map((n) => ({ id: n.id, addr: n.addr, incarnation: 0 }));
  const converged = opts.converged ?? true;
  for (const n of nodes) {
    // A converged start: every node already knows every member, as after a completed join wave.
    // Otherwise each node knows only a few random seeds and learns the rest by gossip.
    const members = converged ? everyone : pickSeeds(everyone, n.index, opts.seed);
    n.node.start(members, { announce: !converged });
  }

  const mesh: SimMesh = {
    clock,
    net,
    root,
    nodes,
    certificates,
    run(ms) {
      clock.advance(ms);
    },
    runUntil(done, maxMs, stepMs = 10) {
      const start = clock.now();
      while (!done()) {
        if (clock.now() - start >= maxMs) break;
        clock.advance(stepMs);
      }
      return clock.now() - start;
    },
    async kill(index) {
      const n = nodes[index]!;
      n.alive = false;
      await n.node.stop();
    },
    async close() {
      await Promise.all(nodes.filter((n) => n.alive).map((n) => n.node.stop()));
      for (const n of nodes) n.alive = false;
    },
  };
  return mesh;
}

function pickSeeds(
  everyone: { id: NodeId; addr: string; incarnation: number }[],
  index: number,
  seed: number,
): { id: NodeId; addr: string; incarnation: number }[] {
  const rng = seededRng(seed * 31 + index);
  const picked = new Set<number>([index]);
  while (picked.size < Math.min(4, everyone.length)) picked.add(Math.floor(rng() * everyone.length));
  return [...picked].map((i) => everyone[i]!);
}
