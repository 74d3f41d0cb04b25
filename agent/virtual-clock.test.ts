import { describe, expect, it } from "vitest";
import { randomInt, seededRng } from "../rings/rng.ts";
import { systemClock } from "./clock.ts";
import { EventBudgetExceededError, VirtualClock } from "./virtual-clock.ts";

describe("VirtualClock", () => {
  it("starts at startMs and fires nothing until run", () => {
    const clock = new VirtualClock({ startMs: 1_000 });
    let fired = 0;
    clock.setTimer(10, () => fired++);
    expect(clock.now()).toBe(1_000);
    expect(clock.pending).toBe(1);
    expect(fired).toBe(0);
    expect(clock.nextDueMs()).toBe(1_010);
  });

  it("fires in due-time order and shows the due time as now() inside the callback", () => {
    const clock = new VirtualClock();
    const seen: Array<[string, number]> = [];
    clock.setTimer(30, () => seen.push(["c", clock.now()]));
    clock.setTimer(10, () => seen.push(["a", clock.now()]));
    clock.setTimer(20, () => seen.push(["b", clock.now()]));
    expect(clock.runUntil(25)).toBe(2);
    expect(seen).toEqual([
      ["a", 10],
      ["b", 20],
    ]);
    expect(clock.now()).toBe(25);
    clock.advance(5);
    expect(seen.at(-1)).toEqual(["c", 30]);
    expect(clock.pending).toBe(0);
  });

  it("breaks ties by insertion order", () => {
    const clock = new VirtualClock();
    const seen: number[] = [];
    for (let i = 0; i < 100; i++) clock.setTimer(5, () => seen.push(i));
    clock.runUntilIdle();
    expect(seen).toEqual([...Array(100).keys()]);
  });

  it("runs timers set by callbacks inside the window, including zero-delay ones", () => {
    const clock = new VirtualClock();
    const seen: number[] = [];
    clock.setTimer(10, () => {
      seen.push(clock.now());
      clock.setTimer(0, () => seen.push(clock.now()));
      clock.setTimer(5, () => seen.push(clock.now()));
      clock.setTimer(50, () => seen.push(clock.now()));
    });
    clock.runUntil(20);
    expect(seen).toEqual([10, 10, 15]);
    expect(clock.pending).toBe(1);
  });

  it("clears timers; clearing twice, after firing, or an unknown id is ignored", () => {
    const clock = new VirtualClock();
    let fired = 0;
    const a = clock.setTimer(10, () => fired++);
    const b = clock.setTimer(10, () => fired++);
    clock.clearTimer(a);
    clock.clearTimer(a);
    clock.clearTimer(123_456_789);
    clock.clearTimer(-1);
    clock.clearTimer(Number.NaN);
    expect(clock.pending).toBe(1);
    clock.runUntilIdle();
    expect(fired).toBe(1);
    clock.clearTimer(b);
    expect(clock.pending).toBe(0);
  });

  it("does not let a stale id cancel a newer timer that reuses its slot", () => {
    const clock = new VirtualClock();
    let fired = 0;
    const stale = clock.setTimer(1, () => {});
    clock.clearTimer(stale);
    const fresh = clock.setTimer(1, () => fired++);
    expect(fresh).not.toBe(stale);
    clock.clearTimer(stale);
    clock.runUntilIdle();
    expect(fired).toBe(1);
  });

  it("treats negative and NaN delays as zero and never moves time backwards", () => {
    const clock = new VirtualClock({ startMs: 100 });
    const seen: number[] = [];
    clock.setTimer(-5, () => seen.push(clock.now()));
    clock.setTimer(Number.NaN, () => seen.push(clock.now()));
    clock.runUntil(50); // in the past: a no-op
    expect(seen).toEqual([]);
    expect(clock.now()).toBe(100);
    clock.runUntil(100);
    expect(seen).toEqual([100, 100]);
  });

  it("step fires exactly one due timer", () => {
    const clock = new VirtualClock();
    const seen: number[] = [];
    clock.setTimer(1, () => seen.push(1));
    clock.setTimer(2, () => seen.push(2));
    expect(clock.step(0)).toBe(false);
    expect(clock.step()).toBe(true);
    expect(seen).toEqual([1]);
    expect(clock.now()).toBe(1);
  });

  it("runUntilIdle stops a self-rearming timer with a named error", () => {
    const clock = new VirtualClock();
    const rearm = (): void => {
      clock.setTimer(1, rearm);
    };
    clock.setTimer(1, rearm);
    expect(() => clock.runUntilIdle(1_000)).toThrow(EventBudgetExceededError);
    expect(clock.now()).toBe(1_000);
  });

  it("propagates a callback's error and keeps the rest of the schedule", () => {
    const clock = new VirtualClock();
    let later = 0;
    clock.setTimer(5, () => {
      throw new Error("boom");
    });
    clock.setTimer(6, () => later++);
    expect(() => clock.runUntil(10)).toThrow("boom");
    expect(clock.now()).toBe(5);
    clock.runUntil(10);
    expect(later).toBe(1);
  });

  it("matches a naive reference schedule under random set/clear/advance (seeded)", () => {
    for (let seed = 1; seed <= 10; seed++) {
      const rng = seededRng(seed);
      const clock = new VirtualClock();
      // Reference: a list of live timers kept sorted by (due, seq).
      const live: Array<{ due: number; seq: number; id: number }> = [];
      const fired: number[] = [];
      const expected: number[] = [];
      let seq = 0;
      for (let op = 0; op < 3_000; op++) {
        const r = rng();
        if (r < 0.55) {
          const label = seq++;
          const delay = randomInt(rng, 50);
          const id = clock.setTimer(delay, () => fired.push(label));
          live.push({ due: clock.now() + delay, seq: label, id });
        } else if (r < 0.8 && live.length > 0) {
          const [victim] = live.splice(randomInt(rng, live.length), 1);
          clock.clearTimer(victim!.id);
        } else {
          const until = clock.now() + randomInt(rng, 20);
          live.sort((a, b) => a.due - b.due || a.seq - b.seq);
          while (live.length > 0 && live[0]!.due <= until) expected.push(live.shift()!.seq);
          clock.runUntil(until);
        }
        expect(clock.pending).toBe(live.length);
      }
      live.sort((a, b) => a.due - b.due || a.seq - b.seq);
      for (const t of live) expected.push(t.seq);
      clock.runUntilIdle();
      expect(fired).toEqual(expected);
    }
  });

  it("handles 200,000 timers with heavy clearing", () => {
    const clock = new VirtualClock();
    const rng = seededRng(7);
    let fired = 0;
    let last = -1;
    let ordered = true;
    const ids: number[] = [];
    for (let i = 0; i < 200_000; i++) {
      ids.push(
        clock.setTimer(rng() * 60_000, () => {
          fired++;
          if (clock.now() < last) ordered = false;
          last = clock.now();
        }),
      );
    }
    for (let i = 0; i < ids.length; i += 2) clock.clearTimer(ids[i]!);
    expect(clock.pending).toBe(100_000);
    clock.runUntil(60_000);
    expect(fired).toBe(100_000);
    expect(ordered).toBe(true);
    expect(clock.pending).toBe(0);
  });
});

// systemClock is tested here too: agent/clock.ts has no test file of its own.
describe("systemClock", () => {
  it("reads the wall clock and fires timers once", async () => {
    const clock = systemClock();
    expect(Math.abs(clock.now() - Date.now())).toBeLessThan(1_000);
    const fired = await new Promise<number>((resolve) => {
      clock.setTimer(1, () => resolve(clock.now()));
    });
    expect(fired).toBeGreaterThan(0);
  });

  it("clearTimer cancels; unknown ids are ignored", async () => {
    const clock = systemClock();
    let cancelled = 0;
    const id = clock.setTimer(5, () => cancelled++);
    clock.clearTimer(id);
    clock.clearTimer(id);
    clock.clearTimer(987_654);
    // A later timer on the same clock is the barrier: Node fires 5 ms before 20 ms.
    await new Promise<void>((resolve) => clock.setTimer(20, resolve));
    expect(cancelled).toBe(0);
  });

  it("fires zero and negative delays in the order set", async () => {
    const clock = systemClock();
    const seen: number[] = [];
    await new Promise<void>((resolve) => {
      clock.setTimer(0, () => seen.push(1));
      clock.setTimer(-3, () => seen.push(2));
      clock.setTimer(Number.NaN, () => {
        seen.push(3);
        resolve();
      });
    });
    expect(seen).toEqual([1, 2, 3]);
  });
});
