import fc from "fast-check";
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

  it("holds real 16-char ids, and refuses keys that cannot be ids", () => {
    const seen = new SeenSet(4, 1_000);
    const id = "\u00ff\u0000abcdefghijklm\u0080";
    seen.add(id, 0);
    expect(seen.has(id)).toBe(true);
    expect(seen.has(`${id.slice(0, 15)}\u0081`)).toBe(false);
    expect(seen.has("\u0100")).toBe(false);
    expect(seen.has("x".repeat(17))).toBe(false);
    expect(() => seen.add("\u0100", 0)).toThrow(RangeError);
    expect(() => seen.add("x".repeat(17), 0)).toThrow(RangeError);
  });

  it("grows past its first allocation without losing or evicting an id", () => {
    const seen = new SeenSet(10_000, 1_000_000);
    const key = (i: number) => `id:${String(i).padStart(13, "0")}`;
    for (let i = 0; i < 5_000; i++) seen.add(key(i), i);
    expect(seen.size).toBe(5_000);
    expect(seen.evicted).toBe(0);
    for (let i = 0; i < 5_000; i++) expect(seen.has(key(i))).toBe(true);
    expect(seen.has(key(5_000))).toBe(false);
  });

  it("answers as a Map in insertion order would, through growth, eviction, expiry and refreshes", () => {
    // The model: the Map-based set this one replaced, whose behaviour the gossip layer relies on.
    const op = fc.oneof(
      {
        weight: 9,
        arbitrary: fc.record({
          kind: fc.constant("add" as const),
          key: fc.integer({ min: 0, max: 700 }),
          dtMs: fc.nat(15),
        }),
      },
      {
        weight: 1,
        arbitrary: fc.record({
          kind: fc.constant("prune" as const),
          key: fc.constant(0),
          dtMs: fc.nat(2_000),
        }),
      },
    );
    // Small limits evict; large ones (past the 256 slots allocated at first) grow.
    const limits = fc.oneof(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 257, max: 600 }));
    fc.assert(
      fc.property(limits, fc.array(op, { minLength: 300, maxLength: 1_500 }), (limit, ops) => {
        const ttlMs = 5_000;
        const seen = new SeenSet(limit, ttlMs);
        const model = new Map<string, number>();
        let evicted = 0;
        let now = 0;
        const keyOf = (k: number) =>
          k % 3 === 0 ? `k${k}` : `${String.fromCharCode(k & 0xff, k >> 8)}${"\u00e9".repeat(14)}`;
        const prune = () => {
          for (const [k, at] of model) {
            if (at > now) break;
            model.delete(k);
          }
        };
        for (const { kind, key, dtMs } of ops) {
          now += dtMs;
          if (kind === "prune") {
            seen.prune(now);
            prune();
            continue;
          }
          const k = keyOf(key);
          seen.add(k, now);
          model.delete(k);
          model.set(k, now + ttlMs);
          prune();
          while (model.size > limit) {
            model.delete(model.keys().next().value as string);
            evicted++;
          }
          expect(seen.size).toBe(model.size);
        }
        expect(seen.evicted).toBe(evicted);
        for (let k = 0; k <= 700; k++) expect(seen.has(keyOf(k))).toBe(model.has(keyOf(k)));
      }),
      { numRuns: 60 },
    );
  });
});
