import { describe, expect, it } from "vitest";
import {
  defaultGossipConfig,
  Gossip,
  type GossipAction,
  type GossipConfig,
  InvalidGossipConfigError,
  packFrames,
} from "./gossip.ts";
import { seededRng } from "./rng.ts";

const enc = new TextEncoder();
const env = (id: string, bytes = 0) => {
  const out = new Uint8Array(Math.max(bytes, id.length));
  out.set(enc.encode(id));
  return out;
};
const peerNames = (n: number) => Array.from({ length: n }, (_, i) => `p${i}`);

function node(overrides: Partial<GossipConfig> = {}, peers = 9, seed = 1): Gossip {
  const g = new Gossip("self", { ...defaultGossipConfig(), ...overrides }, seededRng(seed));
  g.handle({ type: "peers", peers: peerNames(peers) }, 0);
  return g;
}

const sends = (actions: GossipAction[]) =>
  actions.filter((a): a is Extract<GossipAction, { type: "send" }> => a.type === "send");

/** Ticks `g` at every wake-up in [fromMs, toMs]; returns all actions. */
function runTicks(g: Gossip, fromMs: number, toMs: number): GossipAction[] {
  const out: GossipAction[] = [];
  let now = fromMs;
  while (now <= toMs) {
    out.push(...g.handle({ type: "tick" }, now));
    now = Math.max(now + 1, g.nextWakeMs());
  }
  return out;
}

describe("eager push", () => {
  it("sends an accepted message to `fanout` distinct peers, never back to the sender, one hop less", () => {
    for (let seed = 1; seed <= 20; seed++) {
      const g = node({}, 9, seed);
      const out = sends(
        g.handle({ type: "accepted", id: "m", envelope: env("m"), hops: 5, from: "p3", priority: "app" }, 0),
      );
      expect(out).toHaveLength(3);
      expect(new Set(out.map((s) => s.to)).size).toBe(3);
      expect(out.some((s) => s.to === "p3")).toBe(false);
      expect(out.every((s) => s.items.length === 1 && s.items[0]?.hops === 4)).toBe(true);
    }
  });

  it("also excludes the sender when peers are many (sampling without a copy)", () => {
    const g = node({ fanout: 3 }, 500);
    for (let i = 0; i < 200; i++) {
      const out = sends(
        g.handle(
          { type: "accepted", id: `m${i}`, envelope: env("m"), hops: 5, from: "p0", priority: "app" },
          0,
        ),
      );
      expect(new Set(out.map((s) => s.to)).size).toBe(3);
      expect(out.some((s) => s.to === "p0")).toBe(false);
    }
  });

  it("publishes with maxHops and marks the id seen", () => {
    const g = node({ maxHops: 7 });
    const out = sends(g.handle({ type: "publish", id: "m", envelope: env("m"), priority: "app" }, 0));
    expect(out).toHaveLength(3);
    expect(out.every((s) => s.items[0]?.hops === 7)).toBe(true);
    expect(g.hasSeen("m")).toBe(true);
  });

  it("batchEagerPush: holds pushes until flush, then sends the batch packed to one set of fanout peers", () => {
    const g = node({ batchEagerPush: true, fanout: 3 }, 9);
    for (const id of ["a", "b", "c"]) {
      const now = g.handle(
        { type: "accepted", id, envelope: env(id, 40), hops: 5, from: "p3", priority: "app" },
        0,
      );
      expect(now).toEqual([]);
    }
    g.handle({ type: "publish", id: "m", envelope: env("m", 40), priority: "membership" }, 0);
    const out = sends(g.handle({ type: "flush" }, 0));
    expect(out).toHaveLength(3); // one frame per peer: all four fit
    expect(new Set(out.map((s) => s.to)).size).toBe(3);
    for (const s of out) {
      // membership first; a mixed batch (p3 and our own publish) excludes nobody, so p3 may be a target
      expect(s.items.map((i) => new TextDecoder().decode(i.envelope).replace(/\0+$/, ""))).toEqual([
        "m",
        "a",
        "b",
        "c",
      ]);
    }
    expect(g.handle({ type: "flush" }, 0)).toEqual([]); // nothing left
    // The eager sends counted as transmits: the lazy rounds send each item limit − 3 more times.
    const limit = 4 * Math.ceil(Math.log10(10 + 1));
    const lazy = sends(runTicks(g, 1, 10_000)).flatMap((s) => s.items).length;
    expect(lazy).toBe(4 * (limit - 3));
  });

  it("eagerPushMembership false: membership messages wait for the gossip rounds; app ones still go at once", () => {
    const g = node({ eagerPushMembership: false }, 9);
    const m = g.handle(
      { type: "accepted", id: "s", envelope: env("s"), hops: 5, from: "p1", priority: "membership" },
      0,
    );
    expect(m).toEqual([]);
    const a = g.handle(
      { type: "accepted", id: "a", envelope: env("a"), hops: 5, from: "p1", priority: "app" },
      0,
    );
    expect(sends(a)).toHaveLength(3);
    const lazy = sends(runTicks(g, 1, 1_000)).flatMap((s) =>
      s.items.map((i) => new TextDecoder().decode(i.envelope)),
    );
    expect(lazy).toContain("s");
  });

  it("batchEagerPush: a batch from one sender is never pushed back to it", () => {
    for (let seed = 1; seed <= 20; seed++) {
      const g = node({ batchEagerPush: true }, 4, seed);
      for (const id of ["a", "b"]) {
        g.handle({ type: "accepted", id, envelope: env(id), hops: 5, from: "p1", priority: "app" }, 0);
      }
      const out = sends(g.handle({ type: "flush" }, 0));
      expect(out.map((s) => s.to)).not.toContain("p1");
    }
  });

  it("stops at 0 hops: nothing sent now, nothing queued for later", () => {
    const g = node({ antiEntropyIntervalMs: 1e9 });
    const now = g.handle(
      { type: "accepted", id: "m", envelope: env("m"), hops: 1, from: "p1", priority: "app" },
      0,
    );
    expect(now).toEqual([]);
    expect(g.hasSeen("m")).toBe(true);
    expect(sends(runTicks(g, 0, 5_000))).toEqual([]);
  });

  it("clamps a peer's hop count to its own maxHops", () => {
    const g = node({ maxHops: 4 });
    const out = sends(
      g.handle({ type: "accepted", id: "m", envelope: env("m"), hops: 16, from: "p1", priority: "app" }, 0),
    );
    expect(out.every((s) => s.items[0]?.hops === 3)).toBe(true);
  });

  it("never sends to itself, and a new peers event replaces the old set", () => {
    const g = node();
    g.handle({ type: "peers", peers: ["self", "q1", "q2", "q2"] }, 0);
    const out = sends(g.handle({ type: "publish", id: "m", envelope: env("m"), priority: "app" }, 0));
    expect(out.map((s) => s.to).sort()).toEqual(["q1", "q2"]);
    expect(g.stats().peers).toBe(2);
  });

  it("ignores an id it has already seen", () => {
    const g = node();
    g.handle({ type: "publish", id: "m", envelope: env("m"), priority: "app" }, 0);
    const again = g.handle(
      { type: "accepted", id: "m", envelope: env("m"), hops: 5, from: "p1", priority: "app" },
      1,
    );
    expect(again).toEqual([]);
    expect(g.stats().duplicateAccepts).toBe(1);
  });
});

describe("lazy gossip", () => {
  it("retransmits on ticks until the transmit limit (eager sends included), then stops", () => {
    const g = node({ antiEntropyIntervalMs: 1e9, retransmitMult: 4 }, 9); // N = 10: limit 8
    const eager = sends(g.handle({ type: "publish", id: "m", envelope: env("m"), priority: "app" }, 0));
    const first = sends(runTicks(g, 0, 199));
    const lazy = sends(runTicks(g, 200, 10_000));
    const total = eager.length + first.length + lazy.length;
    expect(total).toBe(8);
    expect(first.length + lazy.length).toBeGreaterThan(0);
    expect(g.stats().queued).toBe(0);
  });

  it("puts membership items first in each tick's frame and respects the frame limits", () => {
    const g = node({ antiEntropyIntervalMs: 1e9, maxFrameItems: 4, maxFrameBytes: 10_000 });
    for (let i = 0; i < 10; i++) {
      g.handle({ type: "publish", id: `app${i}`, envelope: env(`app${i}`), priority: "app" }, 0);
    }
    g.handle({ type: "publish", id: "alive", envelope: env("alive"), priority: "membership" }, 0);
    const frames = sends(runTicks(g, 0, 200));
    expect(frames.length).toBeGreaterThan(0);
    expect(frames.every((f) => f.items.length <= 4)).toBe(true);
    expect(new TextDecoder().decode(frames[0]?.items[0]?.envelope)).toBe("alive");
  });

  it("stops retransmitting membership news that newer news about its member supersedes", () => {
    const g = node({ antiEntropyIntervalMs: 1e9, eagerPushMembership: false });
    const about = (incarnation: number, weight: number) => ({ node: "x", incarnation, weight });
    const membership = { priority: "membership" as const, repair: false };
    g.handle(
      { type: "publish", id: "suspect-x", envelope: env("suspect-x"), ...membership, subject: about(0, 1) },
      0,
    );
    g.handle(
      {
        type: "accepted",
        id: "dead-x",
        envelope: env("dead-x"),
        hops: 5,
        from: "p1",
        ...membership,
        subject: about(0, 2),
      },
      0,
    );
    // The death of x at 0 superseded our suspicion of it at 0.
    expect(g.stats()).toMatchObject({ queuedMembership: 1, queueSuperseded: 1 });
    // x refuted, and this node learned it however it did (here: told by membership): the death goes.
    g.handle({ type: "supersede", subject: about(1, 0) }, 0);
    expect(g.stats()).toMatchObject({ queuedMembership: 0, queueSuperseded: 2 });
    expect(sends(runTicks(g, 0, 5_000))).toEqual([]);
    // News received with no hops left is not passed on, yet still supersedes what it makes stale.
    g.handle(
      { type: "publish", id: "suspect-x-1", envelope: env("s1"), ...membership, subject: about(1, 1) },
      0,
    );
    g.handle(
      {
        type: "accepted",
        id: "alive-x-2",
        envelope: env("a2"),
        hops: 1,
        from: "p1",
        ...membership,
        subject: about(2, 0),
      },
      0,
    );
    expect(g.stats()).toMatchObject({ queuedMembership: 0, queueSuperseded: 3 });
  });

  it("release passes on, as accepted would have, a message first accepted with relay: false", () => {
    const g = node({ antiEntropyIntervalMs: 1e9, eagerPushMembership: false });
    const death = {
      id: "dead-x",
      envelope: env("dead-x"),
      hops: 5,
      from: "p1",
      priority: "membership" as const,
    };
    g.handle({ type: "accepted", ...death, relay: false, repair: false }, 0);
    expect(g.stats().queuedMembership).toBe(0);
    g.handle({ type: "release", ...death }, 10);
    const items = sends(runTicks(g, 10, 5_000)).flatMap((s) => s.items);
    expect(items.length).toBeGreaterThan(0);
    expect(items.every((i) => i.hops === 4)).toBe(true);
    // Never for an id this node did not accept.
    g.handle({ type: "release", ...death, id: "never-seen" }, 5_000);
    expect(g.stats().queuedMembership).toBe(0);
  });

  it("piggybacks queued items on SWIM messages, membership first, within the budget", () => {
    const g = node();
    g.handle({ type: "publish", id: "a", envelope: env("a", 100), priority: "app" }, 0);
    g.handle({ type: "publish", id: "s", envelope: env("s", 100), priority: "membership" }, 0);
    const items = g.piggyback(150, 10, 0);
    expect(items).toHaveLength(1);
    expect(new TextDecoder().decode(items[0]?.envelope.subarray(0, 1))).toBe("s");
  });

  it("asks to be woken at the next gossip or anti-entropy time", () => {
    const g = node({ gossipIntervalMs: 200, antiEntropyIntervalMs: 1_000 });
    expect(g.nextWakeMs()).toBe(0);
    g.handle({ type: "tick" }, 5_000);
    expect(g.nextWakeMs()).toBeGreaterThanOrEqual(5_000);
    expect(g.nextWakeMs()).toBeLessThan(5_200);
  });
});

describe("anti-entropy", () => {
  function digestFrom(g: Gossip, toMs = 2_000): Extract<GossipAction, { type: "send-digest" }> {
    const digest = runTicks(g, 0, toMs).find((a) => a.type === "send-digest");
    if (digest?.type !== "send-digest") throw new Error("no digest sent");
    return digest;
  }

  it("repairs a gap: digest → want → send", () => {
    const a = node({}, 1);
    const b = new Gossip("p0", defaultGossipConfig(), seededRng(2));
    b.handle({ type: "peers", peers: ["self"] }, 0);
    for (const id of ["m1", "m2", "m3"]) {
      a.handle({ type: "publish", id, envelope: env(id), priority: "app" }, 0);
    }
    b.handle({ type: "accepted", id: "m1", envelope: env("m1"), hops: 1, from: null, priority: "app" }, 0);

    const digest = digestFrom(a);
    expect(digest.to).toBe("p0");
    expect(digest.ids).toEqual(["m3", "m2", "m1"]); // newest first

    const want = b.handle({ type: "digest", from: "self", ids: digest.ids }, 2_000);
    expect(want).toEqual([{ type: "send-want", to: "self", ids: ["m3", "m2"] }]);

    const reply = sends(a.handle({ type: "want", from: "p0", ids: ["m3", "m2"] }, 2_001));
    expect(reply).toHaveLength(1); // batched in one frame
    for (const item of reply[0]?.items ?? []) {
      const id = new TextDecoder().decode(item.envelope);
      b.handle(
        { type: "accepted", id, envelope: item.envelope, hops: item.hops, from: "self", priority: "app" },
        2_002,
      );
    }
    expect(["m1", "m2", "m3"].every((id) => b.hasSeen(id))).toBe(true);
    expect(b.handle({ type: "digest", from: "self", ids: digest.ids }, 2_003)).toEqual([]);
  });

  it("never offers a repair: false message in a digest, and relay: false marks seen without sending", () => {
    const a = node({}, 1);
    a.handle(
      { type: "publish", id: "dead1", envelope: env("dead1"), priority: "membership", repair: false },
      0,
    );
    a.handle({ type: "publish", id: "alive1", envelope: env("alive1"), priority: "membership" }, 0);
    const quiet = a.handle(
      {
        type: "accepted",
        id: "dead2",
        envelope: env("dead2"),
        hops: 5,
        from: "p0",
        priority: "membership",
        relay: false,
        repair: false,
      },
      0,
    );
    expect(quiet).toEqual([]);
    expect(a.hasSeen("dead2")).toBe(true);
    expect(a.stats().queued).toBe(2); // dead1 and alive1 go out in the rounds; dead2 does not
    expect(digestFrom(a).ids).toEqual(["alive1"]);
    // A repeat of the unrelayed message is a duplicate, like any other.
    a.handle(
      { type: "accepted", id: "dead2", envelope: env("dead2"), hops: 5, from: "p0", priority: "membership" },
      1,
    );
    expect(a.stats().duplicateAccepts).toBe(1);
  });

  it("does not ask twice for the same id while a want is in flight", () => {
    const g = node({ antiEntropyIntervalMs: 1_000 });
    expect(g.handle({ type: "digest", from: "p1", ids: ["x", "y"] }, 0)).toHaveLength(1);
    expect(g.handle({ type: "digest", from: "p2", ids: ["x", "y"] }, 10)).toEqual([]);
    // After an interval without an answer, asking again is allowed.
    expect(g.handle({ type: "digest", from: "p2", ids: ["x"] }, 1_500)).toHaveLength(1);
  });

  it("answers a want only with what it holds, counting the misses", () => {
    const g = node();
    g.handle({ type: "publish", id: "m", envelope: env("m"), priority: "app" }, 0);
    const out = sends(g.handle({ type: "want", from: "p4", ids: ["m", "gone"] }, 1));
    expect(out).toEqual([{ type: "send", to: "p4", items: [{ envelope: env("m"), hops: 12 }] }]);
    expect(g.stats().wantMisses).toBe(1);
  });

  it("bounds what one want can make it send; the rest comes at a later want", () => {
    const g = node({ maxRepairFramesPerWant: 2, maxFrameItems: 3 });
    const ids = Array.from({ length: 10 }, (_, i) => `m${i}`);
    for (const id of ids) g.handle({ type: "publish", id, envelope: env(id), priority: "app" }, 0);
    const first = sends(g.handle({ type: "want", from: "p1", ids }, 1));
    expect(first.map((s) => s.items.length)).toEqual([3, 3]);
    expect(g.stats().repairTruncated).toBe(2);
    const rest = sends(g.handle({ type: "want", from: "p1", ids: ids.slice(6) }, 2));
    expect(rest.flatMap((s) => s.items)).toHaveLength(4);
  });

  it("keeps a bounded history, by count and by age", () => {
    const g = node({ historyLimit: 5, historyTtlMs: 10_000, seenTtlMs: 20_000 });
    for (let i = 0; i < 20; i++) {
      g.handle({ type: "publish", id: `m${i}`, envelope: env(`m${i}`), priority: "app" }, i);
    }
    expect(g.stats().history).toBe(5);
    expect(digestFrom(g).ids).toEqual(["m19", "m18", "m17", "m16", "m15"]);
    g.handle({ type: "tick" }, 10_100);
    expect(g.stats().history).toBe(0);
    expect(g.hasSeen("m19")).toBe(true); // seen outlives history, so no re-delivery
  });

  it("bounds history per lane: a membership storm does not evict revocations or app broadcasts", () => {
    const g = node({ historyLimit: 5, historyTtlMs: 10_000, seenTtlMs: 20_000 });
    g.handle({ type: "publish", id: "rev", envelope: env("rev"), priority: "trust" }, 0);
    g.handle({ type: "publish", id: "app", envelope: env("app"), priority: "app" }, 0);
    for (let i = 0; i < 50; i++) {
      g.handle({ type: "publish", id: `s${i}`, envelope: env(`s${i}`), priority: "membership" }, 1);
    }
    expect(g.stats().history).toBe(7); // 5 membership + 1 trust + 1 app
    const repaired = sends(g.handle({ type: "want", from: "p1", ids: ["rev", "app", "s0", "s49"] }, 2));
    const got = repaired.flatMap((s) => s.items.map((i) => new TextDecoder().decode(i.envelope)));
    expect(got).toEqual(["rev", "s49", "app"]); // lane order; s0 was evicted from its own lane only
  });

  it("bounds each digest yet covers the whole history over successive digests", () => {
    const g = node({ maxDigestIds: 4, antiEntropyIntervalMs: 100 });
    for (let i = 0; i < 12; i++) {
      g.handle({ type: "publish", id: `m${i}`, envelope: env(`m${i}`), priority: "app" }, 0);
    }
    const digests = runTicks(g, 0, 1_000).filter((a) => a.type === "send-digest");
    expect(digests.every((d) => d.ids.length === 4)).toBe(true);
    expect(digests[0]?.ids.slice(0, 2)).toEqual(["m11", "m10"]);
    const covered = new Set(digests.flatMap((d) => d.ids));
    expect(covered.size).toBe(12);
  });
});

describe("config and framing", () => {
  it("refuses a seen-set that forgets before the history does", () => {
    const c = { ...defaultGossipConfig(), seenTtlMs: 1_000, historyTtlMs: 2_000 };
    expect(() => new Gossip("x", c, seededRng(1))).toThrow(InvalidGossipConfigError);
    expect(() => new Gossip("x", { ...defaultGossipConfig(), maxHops: 17 }, seededRng(1))).toThrow(
      InvalidGossipConfigError,
    );
    expect(() => new Gossip("x", { ...defaultGossipConfig(), fanout: 0 }, seededRng(1))).toThrow(
      InvalidGossipConfigError,
    );
  });

  it("packs items into frames within byte and item budgets; an oversize item goes alone", () => {
    const item = (n: number) => ({ envelope: new Uint8Array(n), hops: 1 });
    const frames = packFrames([item(10), item(10), item(500), item(10), item(10), item(10)], 100, 2);
    expect(frames.map((f) => f.map((i) => i.envelope.length))).toEqual([[10, 10], [500], [10, 10], [10]]);
  });
});

describe("nextWorkMs", () => {
  it("leaves out gossip rounds with nothing queued, and brings a round back on its grid once there is", () => {
    const g = node({ gossipIntervalMs: 200, antiEntropyIntervalMs: 1_000, eagerPushMembership: false });
    /** Ticks at every `nextAt` in [fromMs, toMs); returns the tick times and the times of sends. */
    const drive = (fromMs: number, toMs: number, nextAt: (now: number) => number) => {
      const ticks: number[] = [];
      const sent: number[] = [];
      for (let now = Math.max(fromMs, nextAt(fromMs)); now < toMs; now = Math.max(now + 1, nextAt(now))) {
        ticks.push(now);
        if (sends(g.handle({ type: "tick" }, now)).length > 0) sent.push(now);
      }
      return { ticks, sent };
    };
    g.handle({ type: "tick" }, 0); // sets the random phases
    const idle = drive(1, 5_001, (now) => g.nextWorkMs(now));
    expect(idle.ticks).toHaveLength(5); // the five digests, no rounds
    expect(idle.sent).toEqual([]);
    g.handle({ type: "publish", id: "m", envelope: env("m"), priority: "membership" }, 5_000.5);
    const busy = drive(5_001, 15_000, (now) => g.nextWorkMs(now));
    // Sent 4 × ceil(log10 11) = 8 times, to 3 peers a round: 3 rounds, the first one the next due
    // (on the round's grid, or with a digest due first), not a whole interval later.
    expect(busy.sent).toHaveLength(3);
    expect(busy.sent[0]! - 5_000.5).toBeLessThan(200);
    expect(g.stats().queued).toBe(0); // then idle again
    expect(drive(15_000, 20_000, (now) => g.nextWorkMs(now)).ticks).toHaveLength(5);
    expect(drive(20_000, 25_000, () => g.nextWakeMs()).ticks.length).toBeGreaterThanOrEqual(25);
  });
});
