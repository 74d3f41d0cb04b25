import { describe, expect, it } from "vitest";
import { DeadlineHeap } from "./deadline-heap.ts";
import { seededRng } from "./rng.ts";

describe("DeadlineHeap", () => {
  it("yields the earliest valid deadline, skipping stale entries, like a sorted scan", () => {
    const rng = seededRng(9);
    const heap = new DeadlineHeap<number>();
    const current = new Map<number, number>(); // key → its live deadline
    for (let step = 0; step < 5_000; step++) {
      const key = Math.floor(rng() * 200);
      if (rng() < 0.2) current.delete(key);
      else {
        const at = Math.floor(rng() * 100_000);
        current.set(key, at);
        heap.push(key, at);
      }
      const valid = (k: number, at: number) => current.get(k) === at;
      const expected = [...current.values()].sort((a, b) => a - b)[0];
      expect(heap.peek(valid)?.atMs).toBe(expected);
      if (rng() < 0.1 && expected !== undefined) {
        const top = heap.peek(valid)!;
        current.delete(top.key);
        heap.pop();
      }
    }
  });

  it("is empty-safe", () => {
    const heap = new DeadlineHeap<string>();
    expect(heap.peek(() => true)).toBeUndefined();
    heap.pop();
    expect(heap.size).toBe(0);
  });
});
