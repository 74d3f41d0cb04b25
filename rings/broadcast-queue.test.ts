import { describe, expect, it } from "vitest";
import {
  type BroadcastPriority,
  BroadcastQueue,
  ITEM_OVERHEAD_BYTES,
  NEWS_WEIGHT,
  retransmitLimit,
} from "./broadcast-queue.ts";

function queue(numNodes = 9, retransmitMult = 4, maxQueued = 1_000): BroadcastQueue {
  return new BroadcastQueue({ retransmitMult, numNodes: () => numNodes, maxQueued });
}

function item(id: string, priority: BroadcastPriority = "app", bytes = 10) {
  return { id, envelope: new Uint8Array(bytes), hops: 3, priority };
}

describe("retransmitLimit", () => {
  it("is mult × ceil(log10(N + 1)), as in memberlist", () => {
    expect(retransmitLimit(4, 1)).toBe(4);
    expect(retransmitLimit(4, 9)).toBe(4);
    expect(retransmitLimit(4, 10)).toBe(8);
    expect(retransmitLimit(4, 200)).toBe(12);
    expect(retransmitLimit(3, 5_000)).toBe(12);
  });
});

describe("BroadcastQueue", () => {
  it("serves membership before a flood of app broadcasts, every take", () => {
    const q = queue(1_000, 4, 10_000);
    for (let i = 0; i < 500; i++) q.enqueue(item(`app${i}`));
    q.enqueue(item("suspect-x", "membership"));
    // Take after take, the membership item comes first until its limit, even though the app items
    // have been transmitted fewer times.
    for (let round = 0; round < retransmitLimit(4, 1_000); round++) {
      const taken = q.take(200, 5);
      expect(taken[0]?.id).toBe("suspect-x");
    }
    expect(q.has("suspect-x")).toBe(false);
    expect(q.take(200, 5)[0]?.priority).toBe("app");
  });

  it("drops an item once it has been sent its limit of times", () => {
    const q = queue(9); // limit 4
    q.enqueue(item("a"));
    let sends = 0;
    for (let i = 0; i < 10; i++) sends += q.take(1_000, 10).length;
    expect(sends).toBe(4);
    expect(q.size()).toBe(0);
  });

  it("counts transmits already made (eager pushes) toward the limit", () => {
    const q = queue(9); // limit 4
    q.enqueue(item("a"), 3);
    expect(q.take(1_000, 10)).toHaveLength(1);
    expect(q.take(1_000, 10)).toHaveLength(0);
    q.enqueue(item("b"), 4);
    expect(q.has("b")).toBe(false);
  });

  it("hands out the least transmitted first within a lane", () => {
    const q = queue(9);
    q.enqueue(item("old"));
    q.take(1_000, 10); // old: 1 transmit
    q.enqueue(item("new"));
    expect(q.take(1_000, 1).map((b) => b.id)).toEqual(["new"]);
    expect(q.take(1_000, 1).map((b) => b.id)).toEqual(["old"]);
  });

  it("respects the byte budget and the item budget, trying smaller items when one does not fit", () => {
    const q = queue(9);
    q.enqueue(item("big", "app", 100));
    q.enqueue(item("small1", "app", 10));
    q.enqueue(item("small2", "app", 10));
    q.enqueue(item("small3", "app", 10));
    const budget = 2 * (10 + ITEM_OVERHEAD_BYTES);
    const taken = q.take(budget, 10);
    expect(taken.map((b) => b.id)).toEqual(["small1", "small2"]);
    expect(q.take(1_000, 2)).toHaveLength(2);
    // Skipping big in the first take did not count as a transmit: only the second take did.
    expect(q.transmitsOf("big")).toBe(1);
  });

  it("stays within maxQueued, dropping the most transmitted app item first", () => {
    const q = queue(9, 4, 3);
    q.enqueue(item("m", "membership"));
    q.enqueue(item("a1"));
    q.take(1_000, 10); // m and a1 now sent once
    q.enqueue(item("a2"));
    q.enqueue(item("a3"));
    expect(q.size()).toBe(3);
    expect(q.has("a1")).toBe(false);
    expect(q.has("m")).toBe(true);
    expect(q.dropped).toBe(1);
  });

  it("applies a lower limit at once when the mesh shrinks", () => {
    let n = 200; // limit 12
    const q = new BroadcastQueue({ retransmitMult: 4, numNodes: () => n, maxQueued: 10 });
    q.enqueue(item("a"));
    for (let i = 0; i < 5; i++) q.take(1_000, 10);
    n = 5; // limit 4, already exceeded
    expect(q.take(1_000, 10)).toHaveLength(0);
    expect(q.size()).toBe(0);
  });
});

describe("BroadcastQueue invalidation", () => {
  const news = (id: string, node: string, kind: keyof typeof NEWS_WEIGHT, incarnation: number) => ({
    ...item(id, "membership"),
    subject: { node, incarnation, weight: NEWS_WEIGHT[kind] },
  });

  it("newer news about a member drops the queued news it supersedes, and only that", () => {
    const q = queue(9);
    q.enqueue(news("suspect-x-3-by-b", "x", "suspect", 3));
    q.enqueue(news("suspect-x-3-by-c", "x", "suspect", 3)); // a confirmation: equal news, both kept
    q.enqueue(news("dead-y-3", "y", "dead", 3));
    q.enqueue(item("app"));
    expect(q.size()).toBe(4);
    // A death of x at 3 supersedes its suspicions at 3; y and the app item are untouched.
    q.enqueue(news("dead-x-3", "x", "dead", 3));
    expect(["suspect-x-3-by-b", "suspect-x-3-by-c"].some((id) => q.has(id))).toBe(false);
    expect(["dead-x-3", "dead-y-3", "app"].every((id) => q.has(id))).toBe(true);
    expect(q.supersededCount).toBe(2);
    // x refutes: its alive at 4 supersedes the death at 3.
    q.enqueue(news("alive-x-4", "x", "alive", 4));
    expect(q.has("dead-x-3")).toBe(false);
    // Older or weaker news supersedes nothing newer.
    q.enqueue(news("suspect-x-2", "x", "suspect", 2));
    q.enqueue(news("alive-y-3", "y", "alive", 3));
    expect(["alive-x-4", "dead-y-3"].every((id) => q.has(id))).toBe(true);
    expect(q.supersededCount).toBe(3);
  });

  it("supersede drops news the node learned without queuing it, and forgets items sent to their limit", () => {
    const q = queue(9); // limit 4
    q.enqueue(news("suspect-x-0", "x", "suspect", 0));
    q.enqueue(news("suspect-z-0", "z", "suspect", 0));
    for (let i = 0; i < 4; i++) q.take(1_000, 1); // z's and x's items: x sent twice, z twice
    expect(q.supersede({ node: "x", incarnation: 0, weight: NEWS_WEIGHT.dead })).toBe(1);
    expect(q.has("suspect-x-0")).toBe(false);
    for (let i = 0; i < 2; i++) q.take(1_000, 1); // z reaches its limit and leaves
    expect(q.size()).toBe(0);
    // Nothing left about z to drop, and the queue still takes news about it.
    expect(q.supersede({ node: "z", incarnation: 1, weight: NEWS_WEIGHT.alive })).toBe(0);
    q.enqueue(news("alive-z-1", "z", "alive", 1));
    expect(q.take(1_000, 10).map((b) => b.id)).toEqual(["alive-z-1"]);
  });
});
