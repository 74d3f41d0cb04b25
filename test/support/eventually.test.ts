import { describe, expect, it } from "vitest";
import { VirtualClock } from "../../agent/virtual-clock.ts";
import { EventuallyTimeoutError, eventually, PredicateTimeoutError, runUntilTrue } from "./eventually.ts";

describe("eventually", () => {
  it("retries until the assertion passes and returns its value", async () => {
    let calls = 0;
    const value = await eventually(
      () => {
        calls++;
        if (calls < 3) throw new Error(`not yet ${calls}`);
        return "done";
      },
      { timeoutMs: 1_000, intervalMs: 1 },
    );
    expect(value).toBe("done");
    expect(calls).toBe(3);
  });

  it("awaits async assertions", async () => {
    let calls = 0;
    await eventually(async () => {
      calls++;
      await Promise.resolve();
      expect(calls).toBeGreaterThan(1);
    });
  });

  it("times out with the last failure as cause", async () => {
    let calls = 0;
    const err = await eventually(
      () => {
        calls++;
        throw new Error(`failure ${calls}`);
      },
      { timeoutMs: 30, intervalMs: 5 },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EventuallyTimeoutError);
    expect((err as Error).name).toBe("EventuallyTimeoutError");
    expect(((err as Error).cause as Error).message).toBe(`failure ${calls}`);
  });
});

describe("runUntilTrue", () => {
  it("stops at the first instant the predicate holds and returns the virtual ms taken", () => {
    const clock = new VirtualClock({ startMs: 500 });
    let hits = 0;
    for (const delay of [10, 20, 30]) clock.setTimer(delay, () => hits++);
    expect(runUntilTrue(clock, () => hits === 2, 1_000)).toBe(20);
    expect(clock.now()).toBe(520);
    expect(clock.pending).toBe(1);
  });

  it("returns 0 without running anything when the predicate already holds", () => {
    const clock = new VirtualClock();
    clock.setTimer(1, () => {});
    expect(runUntilTrue(clock, () => true, 10)).toBe(0);
    expect(clock.pending).toBe(1);
  });

  it("throws PredicateTimeoutError after maxMs of virtual time, leaving later timers", () => {
    const clock = new VirtualClock();
    let fired = 0;
    clock.setTimer(50, () => fired++);
    clock.setTimer(500, () => fired++);
    expect(() => runUntilTrue(clock, () => fired === 2, 100)).toThrow(PredicateTimeoutError);
    expect(clock.now()).toBe(100);
    expect(fired).toBe(1);
  });
});
