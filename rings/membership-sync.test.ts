import { describe, expect, it } from "vitest";
import { Counters } from "./counters.ts";
import { Membership } from "./membership.ts";
import {
  defaultSyncConfig,
  InvalidMembershipConfigError,
  lanConfig,
  type MembershipSyncConfig,
  syncIntervalFor,
} from "./membership-config.ts";
import { MAX_PENDING_HEARSAY } from "./membership-hearsay.ts";
import {
  MembershipSync,
  type SyncAction,
  type SyncDigest,
  type SyncEntry,
  type SyncMemberView,
  syncSetHash,
} from "./membership-sync.ts";
import type { MembershipAction, MembershipEvent, NodeId } from "./membership-types.ts";
import { seededRng } from "./rng.ts";

const id = (c: string) => c.repeat(64) as NodeId;
const [A, B, C, D, E, Y] = ["a", "b", "c", "d", "e", "f"].map(id) as [
  NodeId,
  NodeId,
  NodeId,
  NodeId,
  NodeId,
  NodeId,
];
const addr = (n: NodeId) => `addr-${n.slice(0, 1)}`;

function sync(config: Partial<MembershipSyncConfig> = {}, seed = 1) {
  const counters = new Counters();
  const machine = new MembershipSync({ ...defaultSyncConfig(), ...config }, seededRng(seed), counters);
  return { machine, counters };
}

/** Ticks `s` until it sends a digest (the first tick only sets the phase); returns it and when. */
function firstDigest(s: MembershipSync, peers: NodeId[], held: SyncEntry[], clusterSize = 5) {
  s.handle({ type: "tick", peers, clusterSize, held }, 0);
  const t = s.nextWakeMs();
  const out = s.handle({ type: "tick", peers, clusterSize, held }, t);
  const digest = out.find((a) => a.type === "send-digest");
  if (digest?.type !== "send-digest") throw new Error("no digest sent");
  return { t, digest };
}

const summaryOf = (held: SyncEntry[]): SyncDigest => ({
  summary: true,
  partial: false,
  held: held.length,
  hash: syncSetHash(held),
  entries: [],
});
const fullOf = (held: SyncEntry[], partial = false): SyncDigest => ({
  summary: false,
  partial,
  held: held.length,
  hash: syncSetHash(held),
  entries: held,
});

/** A view of members all alive at the given incarnations. */
const aliveAt =
  (incarnations: Record<NodeId, number>): SyncMemberView =>
  (node) =>
    incarnations[node] === undefined
      ? undefined
      : { incarnation: incarnations[node] as number, state: "alive" };

/** Node B's membership: members A, C, D, E, Y alive at incarnation 0. */
function membershipOfB(): Membership {
  const m = new Membership({ id: B, addr: addr(B) }, lanConfig(), seededRng(7));
  m.handle(
    { type: "seed", members: [A, C, D, E, Y].map((n) => ({ id: n, addr: addr(n), incarnation: 0 })) },
    0,
  );
  return m;
}

/** Delivers ticks to `m` up to `untilMs`; pings and ping-reqs about `silent` members go unanswered. */
function drive(m: Membership, fromMs: number, untilMs: number, silent: Set<NodeId>): MembershipAction[] {
  const log: MembershipAction[] = [];
  const apply = (event: MembershipEvent, t: number) => {
    for (const action of m.handle(event, t)) {
      log.push(action);
      if (action.type !== "send") continue;
      const { kind, seq, target } = action.message;
      if (kind === "ping" && !silent.has(action.to)) apply({ type: "ack", from: action.to, seq }, t);
      if (kind === "ping-req" && silent.has(target)) apply({ type: "nack", from: action.to, seq }, t);
    }
  };
  for (let t = Math.max(fromMs, m.nextWakeMs()); t <= untilMs; t = m.nextWakeMs()) apply({ type: "tick" }, t);
  return log;
}

const hearsay = (log: MembershipAction[]) => log.flatMap((a) => (a.type === "hearsay" ? [a.outcome] : []));
const pings = (log: MembershipAction[]) =>
  log.flatMap((a) => (a.type === "send" && a.message.kind === "ping" ? [a.to] : []));

describe("syncIntervalFor", () => {
  it("scales like memberlist's pushPullScale: ×1 up to 32 members, then ceil(log2 n − 5) + 1", () => {
    expect(syncIntervalFor(5_000, 1)).toBe(5_000);
    expect(syncIntervalFor(5_000, 32)).toBe(5_000);
    expect(syncIntervalFor(5_000, 33)).toBe(10_000);
    expect(syncIntervalFor(5_000, 64)).toBe(10_000);
    expect(syncIntervalFor(5_000, 256)).toBe(20_000);
    expect(syncIntervalFor(5_000, 500)).toBe(25_000);
    expect(syncIntervalFor(5_000, 1_000)).toBe(30_000);
  });

  it("refuses an unusable config", () => {
    const counters = new Counters();
    for (const bad of [{ syncIntervalMs: 0 }, { maxDigestEntries: 2_000 }, { maxNoticesPerSync: 0 }]) {
      expect(() => new MembershipSync({ ...defaultSyncConfig(), ...bad }, seededRng(1), counters)).toThrow(
        InvalidMembershipConfigError,
      );
    }
  });
});

describe("MembershipSync", () => {
  it("sends one summary per scaled interval to a random alive peer, staggered at first", () => {
    const { machine: s, counters } = sync({ syncIntervalMs: 1_000 });
    expect(s.nextWakeMs()).toBe(0);
    expect(s.handle({ type: "tick", peers: [C], clusterSize: 64, held: [] }, 0)).toEqual([]);
    const first = s.nextWakeMs();
    expect(first).toBeGreaterThanOrEqual(0);
    expect(first).toBeLessThan(2_000); // within one interval, ×2 at 64 members
    expect(s.handle({ type: "tick", peers: [C], clusterSize: 64, held: [] }, first)).toEqual([
      { type: "send-digest", to: C, digest: summaryOf([]) },
    ]);
    expect(s.nextWakeMs()).toBe(first + 2_000);
    expect(s.handle({ type: "tick", peers: [C], clusterSize: 64, held: [] }, first + 1_999)).toEqual([]);
    expect(counters.get("sync:digests-sent")).toBe(1);
  });

  it("nodes that hold the same notices exchange one summary and nothing else", () => {
    const { machine: b, counters } = sync({}, 2);
    const held: SyncEntry[] = [{ node: Y, incarnation: 4 }];
    const view = aliveAt({});
    expect(b.handle({ type: "digest", from: A, digest: summaryOf(held), held, view }, 1)).toEqual([]);
    expect(counters.get("sync:digests-agreed")).toBe(1);
    // Same count, another incarnation: not the same set.
    const other = summaryOf([{ node: Y, incarnation: 5 }]);
    expect(b.handle({ type: "digest", from: A, digest: other, held, view }, 2)).toEqual([
      { type: "send-digest", to: A, digest: fullOf(held) },
    ]);
  });

  it("a node that missed a death learns it when it syncs: summary, full digest, want, notice", () => {
    // A holds Y's death at incarnation 0; B, which missed it, holds Y alive at 0.
    const a = sync({}, 1).machine;
    const b = sync({}, 2).machine;
    const held: SyncEntry[] = [{ node: Y, incarnation: 0 }];
    const { t, digest } = firstDigest(b, [A], []);
    expect(digest.digest).toEqual(summaryOf([]));
    const full = a.handle({ type: "digest", from: B, digest: digest.digest, held, view: aliveAt({}) }, t);
    expect(full).toEqual([{ type: "send-digest", to: B, digest: fullOf(held) }]);
    const view = aliveAt({ [A]: 0, [Y]: 0 });
    const want = b.handle({ type: "digest", from: A, digest: fullOf(held), held: [], view }, t + 1);
    expect(want).toEqual([{ type: "send-want", to: A, entries: held }]);
    expect(a.handle({ type: "want", from: B, entries: held }, t + 2)).toEqual([
      { type: "send-notices", to: B, nodes: [Y] },
    ]);
  });

  it("a node that missed a death learns it when a holder syncs with it: the notice comes unasked", () => {
    const a = sync({}, 1).machine;
    const b = sync({}, 2).machine;
    const held: SyncEntry[] = [{ node: Y, incarnation: 0 }];
    const { t, digest } = firstDigest(a, [B], held);
    expect(digest.digest).toEqual(summaryOf(held));
    const full = b.handle({ type: "digest", from: A, digest: digest.digest, held: [], view: aliveAt({}) }, t);
    expect(full).toEqual([{ type: "send-digest", to: A, digest: fullOf([]) }]);
    const answer = a.handle({ type: "digest", from: B, digest: fullOf([]), held, view: aliveAt({}) }, t + 1);
    expect(answer).toEqual([{ type: "send-notices", to: B, nodes: [Y] }]);
  });

  it("then its membership pings the member at once and applies the notice when no ack comes", () => {
    const m = membershipOfB();
    drive(m, 0, 3_000, new Set());
    const t = 3_000.5; // between two probes: the check does not wait for the round-robin
    const out = m.handle({ type: "dead", from: A, node: Y, incarnation: 0, hearsay: true }, t);
    expect(hearsay(out)).toEqual(["pending"]);
    expect(pings(out)).toEqual([Y]);
    expect(m.member(Y)?.state).toBe("alive"); // not believed yet
    expect(m.nextWakeMs()).toBeLessThanOrEqual(t + lanConfig().probeTimeoutMs);
    const log = drive(m, t, t + lanConfig().probeTimeoutMs, new Set([Y]));
    expect(hearsay(log)).toEqual(["confirmed"]);
    expect(m.member(Y)?.state).toBe("dead");
    // Believed on its own ping and the signed notice: no suspicion was gossiped about Y.
    expect(log.some((a) => a.type === "broadcast" && a.message.node === Y)).toBe(false);
  });

  it("a death of a member that acks the ping is dropped (a healed partition replays nothing)", () => {
    const m = membershipOfB();
    drive(m, 0, 3_000, new Set());
    const out = m.handle({ type: "dead", from: A, node: Y, incarnation: 0, hearsay: true }, 3_000);
    const ping = out.find((a) => a.type === "send" && a.to === Y);
    if (ping?.type !== "send") throw new Error("no ping");
    expect(hearsay(m.handle({ type: "ack", from: Y, seq: ping.message.seq }, 3_002))).toEqual(["disproved"]);
    const log = drive(m, 3_002, 20_000, new Set());
    expect(hearsay(log)).toEqual([]);
    expect(log.filter((a) => a.type === "changed")).toEqual([]);
    expect(m.member(Y)?.state).toBe("alive");
  });

  it("an ack from another member, or with another seq, settles nothing", () => {
    const m = membershipOfB();
    const out = m.handle({ type: "dead", from: A, node: Y, incarnation: 0, hearsay: true }, 10);
    const ping = out.find((a) => a.type === "send" && a.to === Y);
    if (ping?.type !== "send") throw new Error("no ping");
    expect(hearsay(m.handle({ type: "ack", from: C, seq: ping.message.seq }, 11))).toEqual([]);
    expect(hearsay(m.handle({ type: "ack", from: Y, seq: ping.message.seq + 100 }, 12))).toEqual([]);
    // The same notice again while the check is in flight sends no second ping.
    expect(m.handle({ type: "dead", from: C, node: Y, incarnation: 0, hearsay: true }, 13)).toEqual([]);
    expect(hearsay(drive(m, 13, 10 + lanConfig().probeTimeoutMs, new Set([Y])))).toEqual(["confirmed"]);
  });

  it("a stale notice (older than a refutation) teaches nothing: not asked for, and not believed if sent", () => {
    // B heard Y refute at incarnation 3; A still holds Y's death at 2.
    const b = sync({}, 2).machine;
    const stale: SyncEntry[] = [{ node: Y, incarnation: 2 }];
    const view = aliveAt({ [A]: 0, [Y]: 3 });
    expect(b.handle({ type: "digest", from: A, digest: fullOf(stale), held: [], view }, 10)).toEqual([]);
    const m = membershipOfB();
    m.handle({ type: "alive", node: Y, incarnation: 3, addr: addr(Y) }, 1);
    const out = m.handle({ type: "dead", from: A, node: Y, incarnation: 2, hearsay: true }, 2);
    expect(hearsay(out)).toEqual(["stale"]);
    expect(pings(out)).toEqual([]);
    const log = drive(m, 2, 10_000, new Set());
    expect(hearsay(log)).toEqual([]);
    expect(m.member(Y)).toMatchObject({ state: "alive", incarnation: 3 });
  });

  it("a leave, or a death of this node, is taken at once (nothing to probe)", () => {
    const m = membershipOfB();
    const left = m.handle({ type: "dead", from: Y, node: Y, incarnation: 0, hearsay: true }, 5);
    expect(left).toContainEqual({ type: "changed", id: Y, state: "left", incarnation: 0 });
    const refuted = m.handle({ type: "dead", from: A, node: B, incarnation: 0, hearsay: true }, 6);
    expect(refuted).toContainEqual({
      type: "broadcast",
      message: { kind: "alive", node: B, incarnation: 1, addr: addr(B) },
    });
  });

  it("holds at most MAX_PENDING_HEARSAY deaths awaiting an ack", () => {
    const ids = Array.from({ length: MAX_PENDING_HEARSAY + 2 }, (_, i) =>
      (i + 1).toString(16).padStart(64, "0"),
    );
    const m = new Membership({ id: B, addr: addr(B) }, lanConfig(), seededRng(3));
    m.handle({ type: "seed", members: ids.map((n) => ({ id: n, addr: n, incarnation: 0 })) }, 0);
    const outcomes = ids.flatMap((n) =>
      hearsay(m.handle({ type: "dead", from: A, node: n, incarnation: 0, hearsay: true }, 1)),
    );
    expect(outcomes.filter((o) => o === "pending")).toHaveLength(MAX_PENDING_HEARSAY);
    expect(outcomes.filter((o) => o === "dropped")).toHaveLength(2);
  });

  it("asks only for what it lacks, and teaches only what the peer's full digest does not cover", () => {
    const b = sync({}, 2).machine;
    const entries: SyncEntry[] = [
      { node: C, incarnation: 1 }, // B holds C dead at 1 already: not wanted
      { node: D, incarnation: 4 }, // B holds D alive at 2: wanted
      { node: E, incarnation: 0 }, // unknown to B: not wanted
    ];
    const view: SyncMemberView = (n) =>
      n === C ? { incarnation: 1, state: "dead" } : n === D ? { incarnation: 2, state: "alive" } : undefined;
    const held: SyncEntry[] = [
      { node: C, incarnation: 1 }, // covered
      { node: Y, incarnation: 5 }, // not covered: taught
    ];
    expect(b.handle({ type: "digest", from: A, digest: fullOf(entries), held, view }, 1)).toEqual([
      { type: "send-notices", to: A, nodes: [Y] },
      { type: "send-want", to: A, entries: [{ node: D, incarnation: 4 }] },
    ]);
  });

  it("bounds: full digests over maxDigestEntries rotate a partial window over every notice held", () => {
    const held = Array.from({ length: 7 }, (_, i) => ({ node: id(String(i)), incarnation: i }));
    const { machine: s } = sync({ syncIntervalMs: 100, maxDigestEntries: 3, maxAnswersPerInterval: 10 });
    const windows: SyncEntry[][] = [];
    for (let i = 0; i < 4; i++) {
      const out = s.handle({ type: "digest", from: C, digest: summaryOf([]), held, view: aliveAt({}) }, i);
      const { digest } = out[0] as Extract<SyncAction, { type: "send-digest" }>;
      expect(digest).toMatchObject({ summary: false, partial: true, held: 7 });
      expect(digest.hash).toEqual(syncSetHash(held)); // the whole set's, not the window's
      windows.push([...digest.entries]);
    }
    expect(windows.map((w) => w.map((e) => e.incarnation))).toEqual([[0, 1, 2], [3, 4, 5], [6], [0, 1, 2]]);
  });

  it("bounds: a partial digest is answered only within its key range", () => {
    const b = sync({}, 2).machine;
    const held = [C, D, E, Y].map((node) => ({ node, incarnation: 0 }));
    const none = () => undefined;
    const narrow = fullOf([{ node: D, incarnation: 0 }], true); // speaks for D only
    expect(b.handle({ type: "digest", from: A, digest: narrow, held, view: none }, 1)).toEqual([]);
    const wider = fullOf(
      [
        { node: C, incarnation: 0 },
        { node: Y, incarnation: 0 },
      ],
      true,
    ); // speaks for C .. Y: D and E are missing from it
    expect(b.handle({ type: "digest", from: A, digest: wider, held, view: none }, 2)).toEqual([
      { type: "send-notices", to: A, nodes: [D, E] },
    ]);
  });

  it("bounds: at most maxNoticesPerSync notices taught and wanted per digest", () => {
    const b = sync({ maxNoticesPerSync: 2 }, 2).machine;
    const many = Array.from({ length: 5 }, (_, i) => ({ node: id(String(i)), incarnation: 1 }));
    const held = many.map((e) => ({ ...e, incarnation: 2 }));
    const view: SyncMemberView = () => ({ incarnation: 0, state: "alive" });
    const out = b.handle({ type: "digest", from: A, digest: fullOf(many), held, view }, 1);
    const sizes = out.map((a) =>
      a.type === "send-notices" ? a.nodes.length : a.type === "send-want" ? a.entries.length : -1,
    );
    expect(sizes).toEqual([2, 2]);
  });

  it("bounds: answers at most maxAnswersPerInterval digests per interval, counting the refusals", () => {
    const { machine: b, counters } = sync({ syncIntervalMs: 1_000, maxAnswersPerInterval: 2 }, 2);
    const held = [{ node: Y, incarnation: 0 }];
    const digest = { type: "digest" as const, from: A, digest: summaryOf([]), held, view: aliveAt({}) };
    expect(b.handle(digest, 10)).toHaveLength(1);
    expect(b.handle(digest, 20)).toHaveLength(1);
    expect(b.handle(digest, 30)).toEqual([]);
    expect(counters.get("rejected:sync-busy")).toBe(1);
    expect(b.handle(digest, 1_011)).toHaveLength(1); // the first answer is an interval old
    // Agreeing summaries cost no answer and are never refused.
    expect(b.handle({ ...digest, digest: summaryOf(held) }, 1_012)).toEqual([]);
    expect(counters.get("rejected:sync-busy")).toBe(1);
  });

  it("bounds: a want is answered once, only from the peer offered to, only with what was offered", () => {
    const { machine: a, counters } = sync({}, 1);
    const held = [{ node: Y, incarnation: 0 }];
    a.handle({ type: "digest", from: B, digest: summaryOf([]), held, view: aliveAt({}) }, 5); // offers Y to B
    expect(a.handle({ type: "want", from: C, entries: held }, 6)).toEqual([]);
    expect(counters.get("rejected:sync-unsolicited-want")).toBe(1);
    const asked = [...held, { node: D, incarnation: 0 }]; // D was never offered
    expect(a.handle({ type: "want", from: B, entries: asked }, 6)).toEqual([
      { type: "send-notices", to: B, nodes: [Y] },
    ]);
    expect(a.handle({ type: "want", from: B, entries: held }, 7)).toEqual([]);
    expect(counters.get("rejected:sync-unsolicited-want")).toBe(2);
  });
});
