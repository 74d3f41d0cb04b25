import { describe, expect, it } from "vitest";
import { Membership } from "./membership.ts";
import { InvalidMembershipConfigError, lanConfig } from "./membership-config.ts";
import type { MembershipAction, MembershipEvent, NodeId } from "./membership-types.ts";
import { seededRng } from "./rng.ts";

const [A, B, C, D, E, F] = ["a", "b", "c", "d", "e", "f"].map((c) => c.repeat(64)) as [
  NodeId,
  NodeId,
  NodeId,
  NodeId,
  NodeId,
  NodeId,
];
const addr = (id: NodeId) => `addr-${id.slice(0, 1)}`;

/** Node A with the given peers seeded at incarnation 0 at time 0. */
function node(peers: NodeId[], seed = 1): Membership {
  const m = new Membership({ id: A, addr: addr(A) }, lanConfig(), seededRng(seed));
  m.handle({ type: "seed", members: peers.map((id) => ({ id, addr: addr(id), incarnation: 0 })) }, 0);
  return m;
}

type Send = Extract<MembershipAction, { type: "send" }>;
const sends = (actions: MembershipAction[], kind: string): Send[] =>
  actions.filter((a): a is Send => a.type === "send" && a.message.kind === kind);
const gossip = (actions: MembershipAction[]) =>
  actions.flatMap((a) => (a.type === "broadcast" ? [a.message] : []));
const changes = (actions: MembershipAction[]) =>
  actions.flatMap((a) => (a.type === "changed" ? [{ id: a.id, state: a.state }] : []));

/** Starts the next probe; returns its start time and ping. */
function probe(m: Membership): { t: number; ping: Send } {
  const t = m.nextWakeMs();
  const ping = sends(m.handle({ type: "tick" }, t), "ping")[0];
  if (!ping) throw new Error("no probe started");
  return { t, ping };
}

/**
 * Ticks `m` at every wake up to `untilMs`. Pings are acked at once unless their target is `silent`;
 * ping-reqs about a silent target are nacked at once by the helper. Returns what happened, timed.
 */
function drive(m: Membership, untilMs: number, silent: Set<NodeId> = new Set()) {
  const log: { t: number; action: MembershipAction }[] = [];
  const apply = (event: MembershipEvent, t: number) => {
    for (const action of m.handle(event, t)) {
      log.push({ t, action });
      if (action.type !== "send") continue;
      const { kind, seq, target } = action.message;
      if (kind === "ping" && !silent.has(action.to)) apply({ type: "ack", from: action.to, seq }, t);
      if (kind === "ping-req" && silent.has(target)) apply({ type: "nack", from: action.to, seq }, t);
    }
  };
  for (let t = m.nextWakeMs(); t <= untilMs; t = m.nextWakeMs()) apply({ type: "tick" }, t);
  return log;
}
const whenChanged = (log: ReturnType<typeof drive>, id: NodeId, state: string) =>
  log.filter(({ action: a }) => a.type === "changed" && a.id === id && a.state === state).map((e) => e.t);

describe("Membership probing", () => {
  it("announces itself on seed and rejects an unusable config", () => {
    const m = new Membership({ id: A, addr: addr(A) }, lanConfig(), seededRng(1));
    const out = m.handle({ type: "seed", members: [{ id: B, addr: addr(B), incarnation: 3 }] }, 0);
    expect(gossip(out)).toEqual([{ kind: "alive", node: A, incarnation: 0, addr: addr(A) }]);
    expect(changes(out)).toEqual([{ id: B, state: "alive" }]);
    expect(m.member(B)?.incarnation).toBe(3);
    const bad = { ...lanConfig(), probeTimeoutMs: 1000 };
    expect(() => new Membership({ id: A, addr: "x" }, bad, seededRng(1))).toThrow(
      InvalidMembershipConfigError,
    );
  });

  it("happy path: an ack within the timeout ends the probe with no ping-req and no suspicion", () => {
    const m = node([B, C, D, E]);
    const { t, ping } = probe(m);
    expect(ping.message.target).toBe(ping.to);
    expect(m.handle({ type: "ack", from: ping.to, seq: ping.message.seq }, t + 10)).toEqual([]);
    expect(m.nextWakeMs()).toBe(t + 1000);
    const next = m.handle({ type: "tick" }, t + 1000);
    expect(sends(next, "ping")).toHaveLength(1);
    expect(sends(next, "ping-req")).toHaveLength(0);
    expect(gossip(next)).toEqual([]);
    expect(m.member(ping.to)?.state).toBe("alive");
    expect(m.healthScore()).toBe(0);
  });

  it("probes every member once per round, in a fresh order each round", () => {
    const m = node([B, C, D, E]);
    const targets = drive(m, 20_000).flatMap(({ action: a }) =>
      a.type === "send" && a.message.kind === "ping" ? [a.to] : [],
    );
    const rounds = [0, 4, 8, 12, 16].map((i) => targets.slice(i, i + 4));
    for (const round of rounds) expect([...round].sort()).toEqual([B, C, D, E]);
    expect(new Set(rounds.map((r) => r.join())).size).toBeGreaterThan(1);
  });

  it("a missed ack sends ping-reqs to indirectChecks distinct other members", () => {
    const m = node([B, C, D, E]);
    const { t, ping } = probe(m);
    expect(m.nextWakeMs()).toBe(t + 500);
    const reqs = sends(m.handle({ type: "tick" }, t + 500), "ping-req");
    expect(reqs).toHaveLength(3);
    expect(new Set(reqs.map((r) => r.to)).size).toBe(3);
    for (const r of reqs) {
      expect([A, ping.to]).not.toContain(r.to);
      expect(r.message).toEqual({ kind: "ping-req", seq: ping.message.seq, target: ping.to });
    }
  });

  it("an ack relayed by a helper clears the probe", () => {
    const m = node([B, C, D, E]);
    const { t, ping } = probe(m);
    const helper = sends(m.handle({ type: "tick" }, t + 500), "ping-req")[0]!.to;
    m.handle({ type: "ack", from: helper, seq: ping.message.seq }, t + 700);
    const out = m.handle({ type: "tick" }, t + 1000);
    expect(gossip(out)).toEqual([]);
    expect(m.member(ping.to)?.state).toBe("alive");
    expect(m.healthScore()).toBe(0);
  });

  it("as a helper: pings the target with its own seq, relays the ack, else nacks after nackTimeoutMs", () => {
    const m = node([B, C]);
    const ping = sends(m.handle({ type: "ping-req", from: B, seq: 77, target: C }, 100), "ping")[0]!;
    expect(ping.to).toBe(C);
    expect(ping.message.seq).not.toBe(77);
    const relayed = sends(m.handle({ type: "ack", from: C, seq: ping.message.seq }, 120), "ack");
    expect(relayed).toEqual([
      { type: "send", to: B, addr: addr(B), message: { kind: "ack", seq: 77, target: C } },
    ]);

    const ping2 = sends(m.handle({ type: "ping-req", from: B, seq: 78, target: C }, 200), "ping")[0]!;
    expect(sends(m.handle({ type: "tick" }, 599), "nack")).toEqual([]);
    expect(sends(m.handle({ type: "tick" }, 600), "nack")).toEqual([
      { type: "send", to: B, addr: addr(B), message: { kind: "nack", seq: 78, target: C } },
    ]);
    expect(sends(m.handle({ type: "ack", from: C, seq: ping2.message.seq }, 650), "ack")).toEqual([]);
  });

  it("answers pings meant for it, also from strangers with an address, and drops misdirected ones", () => {
    const m = node([B]);
    expect(sends(m.handle({ type: "ping", from: F, seq: 5, addr: "addr-f" }, 10), "ack")).toEqual([
      { type: "send", to: F, addr: "addr-f", message: { kind: "ack", seq: 5, target: A } },
    ]);
    expect(m.handle({ type: "ping", from: B, seq: 6, target: C }, 10)).toEqual([]);
  });
});

describe("Membership suspicion", () => {
  it("a failed probe suspects the target, which is dead after the max suspicion timeout", () => {
    const m = node([B, C, D, E]);
    const log = drive(m, 60_000, new Set([C]));
    const [suspected] = whenChanged(log, C, "suspect");
    expect(suspected).toBeDefined();
    const broadcast = log.find(({ action: a }) => a.type === "broadcast" && a.message.kind === "suspect");
    expect(broadcast).toEqual({
      t: suspected,
      action: { type: "broadcast", message: { kind: "suspect", node: C, incarnation: 0 } },
    });
    // n = 5: min = 4 × max(1, log10 5) × 1 s = 4 s, max = 6 × 4 s; k = 2 but nobody confirms.
    expect(whenChanged(log, C, "dead")).toEqual([suspected! + 24_000]);
    const dead = suspected! + 24_000;
    expect(log.filter(({ t, action: a }) => t > dead && a.type === "send" && a.to === C)).toEqual([]);
    expect(m.healthScore()).toBe(0); // every helper nacked: the fault is C's, not ours
  });

  it("independent confirmations shorten the timeout to the exact expected value", () => {
    const m = node([B, C, D, E]);
    drive(m, 5000); // probes of everyone answered, so only the gossip below suspects anyone
    m.handle({ type: "suspect", from: B, node: C, incarnation: 0 }, 5000);
    drive(m, 6000);
    const again = m.handle({ type: "suspect", from: D, node: C, incarnation: 0 }, 6000);
    m.handle({ type: "suspect", from: D, node: C, incarnation: 0 }, 6500); // a repeat counts once
    m.handle({ type: "suspect", from: B, node: C, incarnation: 0 }, 6500); // so does the accuser
    expect(changes(again)).toEqual([]); // still one transition
    // One confirmation of k = 2: 24000 − 20000 × ln 2 / ln 3 = 11381.4 ms.
    expect(whenChanged(drive(m, 60_000), C, "dead")).toEqual([5000 + 11_381]);

    const m2 = node([B, C, D, E]);
    drive(m2, 5000);
    m2.handle({ type: "suspect", from: B, node: C, incarnation: 0 }, 5000);
    drive(m2, 6000);
    m2.handle({ type: "suspect", from: D, node: C, incarnation: 0 }, 6000);
    drive(m2, 7000);
    m2.handle({ type: "suspect", from: E, node: C, incarnation: 0 }, 7000);
    expect(whenChanged(drive(m2, 60_000), C, "dead")).toEqual([5000 + 4000]);
  });

  it("asks to relay only gossip that was news: a new suspicion or confirmation, never one about itself", () => {
    const relays = (out: MembershipAction[]) => out.filter((a) => a.type === "relay").length;
    const m = node([B, C, D, E]);
    drive(m, 5000);
    expect(relays(m.handle({ type: "suspect", from: B, node: C, incarnation: 0 }, 5000))).toBe(1);
    expect(relays(m.handle({ type: "suspect", from: B, node: C, incarnation: 0 }, 5001))).toBe(0); // repeat
    expect(relays(m.handle({ type: "suspect", from: D, node: C, incarnation: 0 }, 5002))).toBe(1); // confirmation
    expect(relays(m.handle({ type: "dead", from: D, node: C, incarnation: 0 }, 5003))).toBe(1);
    expect(relays(m.handle({ type: "dead", from: E, node: C, incarnation: 0 }, 5004))).toBe(0); // known
    expect(relays(m.handle({ type: "suspect", from: E, node: C, incarnation: 0 }, 5005))).toBe(0); // dead already
    // About ourselves: refuted with our own alive, and the accusation goes no further.
    const out = m.handle({ type: "suspect", from: B, node: A, incarnation: 0 }, 5006);
    expect(relays(out)).toBe(0);
    expect(gossip(out)).toEqual([{ kind: "alive", node: A, incarnation: 1, addr: addr(A) }]);
    expect(relays(m.handle({ type: "dead", from: B, node: A, incarnation: 1 }, 5007))).toBe(0);
    expect(relays(m.handle({ type: "alive", node: A, incarnation: 9, addr: addr(A) }, 5008))).toBe(0);
  });

  it("refutes accusations against itself with a higher incarnation, at a health cost", () => {
    const m = node([B, C]);
    const out = m.handle({ type: "suspect", from: B, node: A, incarnation: 0 }, 100);
    expect(gossip(out)).toEqual([{ kind: "alive", node: A, incarnation: 1, addr: addr(A) }]);
    expect(m.handle({ type: "suspect", from: C, node: A, incarnation: 0 }, 110)).toEqual([]); // stale
    const out2 = m.handle({ type: "dead", from: B, node: A, incarnation: 3 }, 120);
    expect(gossip(out2)).toEqual([{ kind: "alive", node: A, incarnation: 4, addr: addr(A) }]);
    expect(m.incarnation()).toBe(4);
    expect(m.member(A)?.state).toBe("alive");
    expect(m.healthScore()).toBe(2);
  });

  it("a newer alive clears a suspicion; the member is never declared dead", () => {
    const m = node([B, C, D, E]);
    m.handle({ type: "suspect", from: B, node: C, incarnation: 0 }, 100);
    const out = m.handle({ type: "alive", node: C, incarnation: 1, addr: addr(C) }, 200);
    expect(changes(out)).toEqual([{ id: C, state: "alive" }]);
    expect(whenChanged(drive(m, 60_000), C, "dead")).toEqual([]);
  });

  it("ignores stale incarnations and gossip about unknown nodes; dead is final for its incarnation", () => {
    const m = node([B, C, D]);
    // A newer incarnation of a live member: no transition, but news worth relaying.
    expect(m.handle({ type: "alive", node: C, incarnation: 2, addr: addr(C) }, 10)).toEqual([
      { type: "relay" },
    ]);
    expect(m.handle({ type: "suspect", from: B, node: C, incarnation: 1 }, 20)).toEqual([]);
    expect(m.handle({ type: "dead", from: B, node: C, incarnation: 1 }, 30)).toEqual([]);
    expect(m.handle({ type: "alive", node: C, incarnation: 2, addr: "moved" }, 40)).toEqual([]);
    expect(m.handle({ type: "suspect", from: B, node: F, incarnation: 9 }, 50)).toEqual([]);
    expect(m.handle({ type: "dead", from: B, node: F, incarnation: 9 }, 60)).toEqual([]);
    expect(m.member(F)).toBeUndefined();
    expect(m.member(C)).toMatchObject({ state: "alive", incarnation: 2, addr: addr(C) });

    // SWIM's order: suspected at 2 first, then declared dead at 2 (see below for a death unheralded).
    m.handle({ type: "suspect", from: B, node: C, incarnation: 2 }, 65);
    expect(m.handle({ type: "dead", from: B, node: C, incarnation: 2 }, 70)).toEqual([
      { type: "changed", id: C, state: "dead", incarnation: 2 },
      { type: "relay" },
    ]);
    expect(m.handle({ type: "dead", from: D, node: C, incarnation: 2 }, 75)).toEqual([]);
    expect(m.handle({ type: "alive", node: C, incarnation: 2, addr: addr(C) }, 80)).toEqual([]);
    const back = m.handle({ type: "alive", node: C, incarnation: 3, addr: "new" }, 90);
    expect(changes(back)).toEqual([{ id: C, state: "alive" }]);
    expect(back.at(-1)).toEqual({ type: "relay" });
    expect(m.member(C)).toMatchObject({ state: "alive", incarnation: 3, addr: "new" });

    expect(changes(m.handle({ type: "alive", node: F, incarnation: 0, addr: "f" }, 100))).toEqual([
      { id: F, state: "alive" },
    ]);
    expect(m.aliveCount()).toBe(5);
  });
});

describe("Membership unheralded deaths", () => {
  const hearsay = (out: MembershipAction[]) =>
    out.flatMap((a) => (a.type === "hearsay" ? [`${a.source}:${a.outcome}`] : []));

  it("a gossiped death of a member held alive (no suspicion heard) is checked with one ping first", () => {
    const m = node([B, C, D]);
    const out = m.handle({ type: "dead", from: B, node: C, incarnation: 0 }, 10);
    // Not believed yet, not relayed: C is pinged, apart from the probe round.
    expect(hearsay(out)).toEqual(["gossip:pending"]);
    expect(out.some((a) => a.type === "relay" || a.type === "changed")).toBe(false);
    const ping = sends(out, "ping")[0]!;
    expect(ping.to).toBe(C);
    expect(m.member(C)?.state).toBe("alive");
    // C answers: the death is dropped, C stays alive, and nothing is gossiped about it.
    const acked = m.handle({ type: "ack", from: C, seq: ping.message.seq }, 12);
    expect(hearsay(acked)).toEqual(["gossip:disproved"]);
    expect(drive(m, 5_000).some(({ action: a }) => a.type === "changed" && a.id === C)).toBe(false);
    expect(m.member(C)?.state).toBe("alive");
  });

  it("an unanswered check applies the death as signed; a death after a suspicion is believed at once", () => {
    const m = node([B, C, D]);
    const out = m.handle({ type: "dead", from: B, node: C, incarnation: 0 }, 10);
    expect(hearsay(out)).toEqual(["gossip:pending"]);
    const log = drive(m, 10 + lanConfig().probeTimeoutMs, new Set([C]));
    expect(whenChanged(log, C, "dead")).toEqual([10 + lanConfig().probeTimeoutMs]);
    expect(log.flatMap(({ action }) => hearsay([action]))).toEqual(["gossip:confirmed"]);
    // SWIM's usual order — suspected, then declared dead — needs no check.
    m.handle({ type: "suspect", from: B, node: D, incarnation: 0 }, 600);
    const dead = m.handle({ type: "dead", from: B, node: D, incarnation: 0 }, 700);
    expect(changes(dead)).toEqual([{ id: D, state: "dead" }]);
    expect(dead.at(-1)).toEqual({ type: "relay" });
    // A leave is the member's own word, and an accusation of this node is refuted at once.
    const left = m.handle({ type: "dead", from: B, node: B, incarnation: 0 }, 800);
    expect(changes(left)).toEqual([{ id: B, state: "left" }]);
    const refuted = m.handle({ type: "dead", from: B, node: A, incarnation: 0 }, 900);
    expect(gossip(refuted)).toEqual([{ kind: "alive", node: A, incarnation: 1, addr: addr(A) }]);
  });
});

describe("Membership Lifeguard awareness", () => {
  it("a failed probe with no helpers raises the score and stretches the next interval and timeout", () => {
    const m = node([B]);
    const starts = drive(m, 20_000, new Set([B])).flatMap(({ t, action: a }) =>
      a.type === "send" && a.message.kind === "ping" ? [t] : [],
    );
    const t0 = starts[0]!;
    // Fail at score 0 → 1 (interval 2 s) → 2 (interval 3 s); B is dead after 4 s (k = 0: min).
    expect(starts).toEqual([t0, t0 + 1000, t0 + 3000]);
    expect(m.member(B)?.state).toBe("dead");
    expect(m.healthScore()).toBe(3);
  });

  it("counts missing nacks from helpers, ignores strangers' nacks, and heals on success", () => {
    const scoreAfter = (nackers: number, stranger = false) => {
      const m = node([B, C, D, E]);
      const { t, ping } = probe(m);
      const helpers = sends(m.handle({ type: "tick" }, t + 500), "ping-req").map((r) => r.to);
      for (const h of helpers.slice(0, nackers))
        m.handle({ type: "nack", from: h, seq: ping.message.seq }, t + 900);
      if (stranger) m.handle({ type: "nack", from: ping.to, seq: ping.message.seq }, t + 900);
      const next = sends(m.handle({ type: "tick" }, t + 1000), "ping")[0]!;
      return Object.assign(m, { next, nextAt: t + 1000 });
    };
    expect(scoreAfter(3).healthScore()).toBe(0);
    expect(scoreAfter(2).healthScore()).toBe(1);
    expect(scoreAfter(2, true).healthScore()).toBe(1);
    const m = scoreAfter(0);
    expect(m.healthScore()).toBe(3);
    // The next probe, started as the failed one ended, runs at 4× interval and timeout; an ack heals.
    const { next: ping, nextAt: t } = m;
    expect(m.nextWakeMs()).toBe(t + 2000);
    m.handle({ type: "ack", from: ping.to, seq: ping.message.seq }, t + 10);
    expect(m.healthScore()).toBe(2);
    expect(m.nextWakeMs()).toBe(t + 4000);
  });
});

describe("Membership tombstones", () => {
  it("forgets dead members deadReclaimMs after they died, at the next round; a later alive rejoins", () => {
    const m = new Membership({ id: A, addr: addr(A) }, { ...lanConfig(), deadReclaimMs: 5000 }, seededRng(3));
    m.handle({ type: "seed", members: [B, C, D].map((id) => ({ id, addr: addr(id), incarnation: 0 })) }, 0);
    m.handle({ type: "dead", from: B, node: C, incarnation: 0 }, 100);
    drive(m, 4000);
    expect(m.member(C)?.state).toBe("dead");
    drive(m, 10_000);
    expect(m.member(C)).toBeUndefined();
    const back = m.handle({ type: "alive", node: C, incarnation: 0, addr: addr(C) }, 10_001);
    expect(changes(back)).toEqual([{ id: C, state: "alive" }]);
    const pinged = drive(m, 20_000).some(({ action: a }) => a.type === "send" && a.to === C);
    expect(pinged).toBe(true);
  });
});

describe("Membership reconnect", () => {
  it("pings a random dead member every reconnectIntervalMs, never one that left, and not when unset", () => {
    const config = { ...lanConfig(), reconnectIntervalMs: 2000 };
    const m = new Membership({ id: A, addr: addr(A) }, config, seededRng(5));
    m.handle({ type: "seed", members: [B, C, D].map((id) => ({ id, addr: addr(id), incarnation: 0 })) }, 0);
    m.handle({ type: "suspect", from: B, node: C, incarnation: 0 }, 100);
    m.handle({ type: "dead", from: B, node: C, incarnation: 0 }, 100);
    m.handle({ type: "dead", from: D, node: D, incarnation: 0 }, 100); // D left
    const reconnects = drive(m, 20_000).filter(
      ({ action: a }) => a.type === "send" && a.reconnect === true,
    ) as { t: number; action: Send }[];
    expect(reconnects.length).toBeGreaterThanOrEqual(9);
    expect(reconnects.length).toBeLessThanOrEqual(10);
    expect(reconnects.every(({ action }) => action.to === C && action.message.kind === "ping")).toBe(true);
    const gaps = reconnects.slice(1).map((r, i) => r.t - (reconnects[i]?.t ?? 0));
    expect(gaps.every((g) => g >= 2000)).toBe(true);

    const plain = node([B, C]);
    plain.handle({ type: "suspect", from: B, node: C, incarnation: 0 }, 100);
    plain.handle({ type: "dead", from: B, node: C, incarnation: 0 }, 100);
    expect(drive(plain, 20_000).some(({ action: a }) => a.type === "send" && a.reconnect)).toBe(false);
  });
});

describe("Membership reconnect timer", () => {
  // Probing every 10 s and a 1 s reconnect timer: wakes no probe explains are the reconnect timer's.
  const config = { ...lanConfig(), probeIntervalMs: 10_000, reconnectIntervalMs: 1000 };
  const seeded = () => {
    const m = new Membership({ id: A, addr: addr(A) }, config, seededRng(3));
    m.handle({ type: "seed", members: [B, C].map((id) => ({ id, addr: addr(id), incarnation: 0 })) }, 0);
    return m;
  };
  /** Ticks at every wake up to `untilMs`, acking pings; the wake times and the reconnect pings'. */
  const run = (m: Membership, untilMs: number) => {
    const wakes: number[] = [];
    const reconnects: number[] = [];
    for (let t = m.nextWakeMs(); t <= untilMs; t = m.nextWakeMs()) {
      wakes.push(t);
      for (const a of m.handle({ type: "tick" }, t)) {
        if (a.type !== "send") continue;
        if (a.reconnect) reconnects.push(t);
        else if (a.message.kind === "ping") m.handle({ type: "ack", from: a.to, seq: a.message.seq }, t);
      }
    }
    return { wakes, reconnects };
  };

  it("does not wake while nobody is dead, and fires on its own grid once somebody dies", () => {
    // The grid the timer drew at seeding, seen on a twin that has a dead member from the start.
    const twin = seeded();
    twin.handle({ type: "suspect", from: B, node: C, incarnation: 0 }, 0);
    twin.handle({ type: "dead", from: B, node: C, incarnation: 0 }, 0);
    const phase = (run(twin, 5_000).reconnects[0] ?? -1) % 1000;
    expect(phase).toBeGreaterThanOrEqual(0);

    const m = seeded();
    // A probe round each 10 s and the start: 4 or 5 wakes, not the 30 more the timer used to add.
    expect(run(m, 30_000).wakes.length).toBeLessThanOrEqual(5);
    m.handle({ type: "suspect", from: B, node: C, incarnation: 0 }, 30_500);
    m.handle({ type: "dead", from: B, node: C, incarnation: 0 }, 30_500);
    const { reconnects } = run(m, 35_000);
    // A ping a second from the death on, at the instants the timer would have fired had it not slept.
    expect(reconnects.length).toBeGreaterThanOrEqual(4);
    expect(reconnects[0]! - 30_500).toBeLessThanOrEqual(1000);
    expect(reconnects.map((t) => t % 1000)).toEqual(reconnects.map(() => phase));
  });
});

describe("Membership leave", () => {
  it("announces its own death, stops, and peers record it as left", () => {
    const m = node([B, C]);
    const out = m.handle({ type: "leave" }, 500);
    expect(gossip(out)).toEqual([{ kind: "dead", node: A, incarnation: 0 }]);
    expect(changes(out)).toEqual([{ id: A, state: "left" }]);
    expect(m.nextWakeMs()).toBe(Number.POSITIVE_INFINITY);
    expect(m.handle({ type: "ping", from: B, seq: 1 }, 600)).toEqual([]);

    const peer = new Membership({ id: B, addr: addr(B) }, lanConfig(), seededRng(2));
    peer.handle({ type: "seed", members: [{ id: A, addr: addr(A), incarnation: 0 }] }, 0);
    const seen = peer.handle({ type: "dead", from: A, node: A, incarnation: 0 }, 510);
    expect(changes(seen)).toEqual([{ id: A, state: "left" }]);
  });
});
