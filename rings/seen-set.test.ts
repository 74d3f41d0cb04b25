import { describe, expect, it } from "vitest";
import { SeenSet } from "./seen-set.ts";

describe("SeenSet", () => {
  it("remembers added ids and nothing else", () => {
    const seen = new SeenSet(10, 1_000);
    seen.add("a", 0);
    expect(seen.has("a")).toBe(true);
    expect(seen.has("b")).toBe(false);
    expect(seen.size).toBe(1);
  });

  it("never holds more than its limit, evicting the oldest first", () => {
    const seen = new SeenSet(3, 1_000_000);
    for (let i = 0; i < 10; i++) seen.add(`m${i}`, i);
    expect(seen.size).toBe(3);
    expect(["m7", "m8", "m9"].every((id) => seen.has(id))).toBe(true);
    expect(seen.has("m6")).toBe(false);
    expect(seen.evicted).toBe(7);
  });

  it("forgets ids once their ttl has passed", () => {
    const seen = new SeenSet(100, 1_000);
    seen.add("old", 0);
    seen.add("young", 600);
    seen.prune(999);
    expect(seen.has("old")).toBe(true);
    seen.prune(1_000);
    expect(seen.has("old")).toBe(false);
    expect(seen.has("young")).toBe(true);
    seen.add("later", 1_600);
    expect(seen.has("young")).toBe(false);
    expect(seen.size).toBe(1);
  });

  it("re-adding refreshes an id so it is evicted last", () => {
    const seen = new SeenSet(2, 1_000);
    seen.add("a", 0);
    seen.add("b", 1);
    seen.add("a", 2);
    seen.add("c", 3);
    expect(seen.has("a")).toBe(true);
    expect(seen.has("b")).toBe(false);
  });

  it("rejects a limit or ttl that cannot work", () => {
    expect(() => new SeenSet(0, 1)).toThrow(RangeError);
    expect(() => new SeenSet(1, 0)).toThrow(RangeError);
  });
});
