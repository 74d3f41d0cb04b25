import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { seededRng } from "../../rings/index.ts";
import { InvalidSpecError } from "./errors.ts";
import {
  backoffDelayMs,
  DEFAULT_RESTART_POLICY,
  describeFailure,
  EMPTY_RESTART_HISTORY,
  type RestartEvent,
  type RestartHistory,
  type RestartPolicy,
  restartPolicy,
  restartStep,
} from "./restart-policy.ts";

const T0 = 1_800_000_000_000;
const crash: RestartEvent = { kind: "exited", exit: { code: 1, signal: null } };
const exact: RestartPolicy = restartPolicy({
  attempts: 3,
  intervalMs: 60_000,
  delayMs: 100,
  maxDelayMs: 1_000,
  jitter: 0,
  mode: "fail",
  healthyResetMs: 10_000,
});

/** Fail `n` times, `gapMs` apart, starting at `startMs`; returns the actions and the last history. */
function failRepeatedly(policy: RestartPolicy, n: number, gapMs: number, seed = 1, startMs = T0) {
  const rng = seededRng(seed);
  let history: RestartHistory = EMPTY_RESTART_HISTORY;
  const actions = [];
  for (let i = 0; i < n; i++) {
    const step = restartStep(history, crash, policy, startMs + i * gapMs, rng);
    history = step.history;
    actions.push(step.action);
  }
  return { actions, history };
}

describe("restartStep: bookkeeping events", () => {
  it("reset forgets everything", () => {
    const { history } = failRepeatedly(exact, 2, 1_000);
    expect(history.consecutiveFailures).toBe(2);
    const step = restartStep(history, { kind: "reset" }, exact, T0, seededRng(1));
    expect(step).toEqual({ history: EMPTY_RESTART_HISTORY, action: { kind: "none" } });
  });

  it("healthy records the first instant only; started clears it", () => {
    const rng = seededRng(1);
    const a = restartStep(EMPTY_RESTART_HISTORY, { kind: "healthy" }, exact, T0, rng);
    expect(a.history.healthySinceMs).toBe(T0);
    expect(a.action.kind).toBe("none");
    const b = restartStep(a.history, { kind: "healthy" }, exact, T0 + 500, rng);
    expect(b.history.healthySinceMs).toBe(T0);
    const c = restartStep(b.history, { kind: "started" }, exact, T0 + 900, rng);
    expect(c.history.healthySinceMs).toBeNull();
    expect(c.action.kind).toBe("none");
  });
});

describe("restartStep: failures", () => {
  it("backs off exponentially up to maxDelayMs, without jitter exactly", () => {
    const policy = restartPolicy({ ...exact, attempts: 10 });
    const { actions } = failRepeatedly(policy, 6, 10);
    expect(actions.map((a) => (a.kind === "restart" ? a.delayMs : -1))).toEqual([
      100, 200, 400, 800, 1_000, 1_000,
    ]);
    expect(actions.map((a) => (a.kind === "restart" ? a.attempt : -1))).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it("jitter keeps each delay within [1 - jitter, 1 + jitter] of the backoff, replayable by seed", () => {
    const policy = restartPolicy({ ...exact, attempts: 10, jitter: 0.5, maxDelayMs: 100_000 });
    const first = failRepeatedly(policy, 6, 10, 42).actions;
    const again = failRepeatedly(policy, 6, 10, 42).actions;
    const other = failRepeatedly(policy, 6, 10, 43).actions;
    expect(again).toEqual(first);
    expect(other).not.toEqual(first);
    first.forEach((a, i) => {
      if (a.kind !== "restart") throw new Error(`expected a restart, got ${a.kind}`);
      const backoff = backoffDelayMs(policy, i);
      expect(a.delayMs).toBeGreaterThanOrEqual(Math.floor(backoff * 0.5));
      expect(a.delayMs).toBeLessThanOrEqual(Math.ceil(backoff * 1.5));
    });
  });

  it('mode "fail" gives up once attempts restarts are in the window, saying why', () => {
    const { actions } = failRepeatedly(exact, 4, 1_000);
    expect(actions.slice(0, 3).map((a) => a.kind)).toEqual(["restart", "restart", "restart"]);
    const last = actions[3]!;
    expect(last.kind).toBe("give-up");
    if (last.kind === "give-up")
      expect(last.reason).toBe("exited with code 1 after 3 restarts within 60000 ms (policy allows 3)");
  });

  it("restarts that left the window no longer count", () => {
    // Failures 61 s apart: each earlier restart has left the 60 s window.
    const { actions, history } = failRepeatedly(exact, 20, 61_000);
    expect(actions.every((a) => a.kind === "restart")).toBe(true);
    expect(history.restartsMs.length).toBe(1);
    // But the backoff still grows: nothing healthy reset it.
    expect(history.consecutiveFailures).toBe(20);
  });

  it('mode "delay" waits for the oldest restart to leave the window and never gives up', () => {
    const policy = restartPolicy({ ...exact, mode: "delay" });
    let history: RestartHistory = EMPTY_RESTART_HISTORY;
    const rng = seededRng(7);
    let nowMs = T0;
    let fullWindows = 0;
    for (let i = 0; i < 12; i++) {
      const step = restartStep(history, crash, policy, nowMs, rng);
      if (step.action.kind !== "restart") throw new Error(`failure ${i}: ${step.action.kind}`);
      const inWindow = history.restartsMs.filter((t) => t > nowMs - policy.intervalMs);
      if (inWindow.length >= policy.attempts) {
        fullWindows++;
        // The window was full: the restart happens once its oldest entry is intervalMs old.
        const oldest = inWindow[0]!;
        expect(nowMs + step.action.delayMs).toBeGreaterThanOrEqual(oldest + policy.intervalMs);
      }
      history = step.history;
      expect(history.restartsMs.length).toBeLessThanOrEqual(policy.attempts);
      nowMs += step.action.delayMs + 5; // it restarted, then crashed 5 ms later
    }
    expect(fullWindows).toBeGreaterThan(2);
  });

  it("a child healthy for healthyResetMs before failing starts over", () => {
    const { history } = failRepeatedly(exact, 3, 1_000);
    const rng = seededRng(3);
    const started = restartStep(history, { kind: "started" }, exact, T0 + 5_000, rng).history;
    const healthy = restartStep(started, { kind: "healthy" }, exact, T0 + 6_000, rng).history;
    const step = restartStep(healthy, crash, exact, T0 + 16_000, rng);
    expect(step.action).toEqual({ kind: "restart", delayMs: 100, attempt: 1 });
    expect(step.history.consecutiveFailures).toBe(1);
    expect(step.history.restartsMs).toEqual([T0 + 16_100]);
  });

  it("a child healthy for less than healthyResetMs keeps its history", () => {
    const { history } = failRepeatedly(exact, 3, 1_000);
    const rng = seededRng(3);
    const healthy = restartStep(history, { kind: "healthy" }, exact, T0 + 6_000, rng).history;
    const step = restartStep(healthy, crash, exact, T0 + 15_999, rng);
    expect(step.action.kind).toBe("give-up");
    expect(step.history.healthySinceMs).toBeNull();
  });

  it("unhealthy counts as a failure", () => {
    const step = restartStep(
      EMPTY_RESTART_HISTORY,
      { kind: "unhealthy", detail: "http 503" },
      exact,
      T0,
      seededRng(1),
    );
    expect(step.action).toEqual({ kind: "restart", delayMs: 100, attempt: 1 });
  });

  it("a retryable start failure is retried, a non-retryable one gives up at once", () => {
    const retry = restartStep(
      EMPTY_RESTART_HISTORY,
      { kind: "start-failed", error: "EAGAIN", retryable: true },
      exact,
      T0,
      seededRng(1),
    );
    expect(retry.action.kind).toBe("restart");
    const fatal = restartStep(
      EMPTY_RESTART_HISTORY,
      { kind: "start-failed", error: "no such binary /x", retryable: false },
      exact,
      T0,
      seededRng(1),
    );
    expect(fatal.action).toEqual({
      kind: "give-up",
      reason: "start failed: no such binary /x; retrying cannot help",
    });
  });

  it('attempts 0 with mode "fail" never restarts', () => {
    const policy = restartPolicy({ attempts: 0, mode: "fail" });
    const step = restartStep(EMPTY_RESTART_HISTORY, crash, policy, T0, seededRng(1));
    expect(step.action.kind).toBe("give-up");
  });

  it("property: delays stay within 0..maxDelayMs and the window never exceeds attempts", () => {
    fc.assert(
      fc.property(
        fc.record({
          attempts: fc.integer({ min: 1, max: 10 }),
          intervalMs: fc.integer({ min: 1, max: 100_000 }),
          delayMs: fc.integer({ min: 0, max: 5_000 }),
          extraMs: fc.integer({ min: 0, max: 50_000 }),
          jitter: fc.double({ min: 0, max: 1, noNaN: true }),
          mode: fc.constantFrom("delay" as const, "fail" as const),
        }),
        fc.array(fc.integer({ min: 0, max: 20_000 }), { minLength: 1, maxLength: 40 }),
        fc.integer(),
        (f, gapsMs, seed) => {
          const policy = restartPolicy({
            attempts: f.attempts,
            intervalMs: f.intervalMs,
            delayMs: f.delayMs,
            maxDelayMs: f.delayMs + f.extraMs,
            jitter: f.jitter,
            mode: f.mode,
          });
          const rng = seededRng(seed);
          let history = EMPTY_RESTART_HISTORY;
          let nowMs = T0;
          for (const gapMs of gapsMs) {
            const step = restartStep(history, crash, policy, nowMs, rng);
            history = step.history;
            expect(history.restartsMs.length).toBeLessThanOrEqual(policy.attempts);
            if (step.action.kind === "give-up") {
              expect(policy.mode).toBe("fail");
              return;
            }
            if (step.action.kind !== "restart") throw new Error("a failure must restart or give up");
            if (policy.mode === "fail") expect(step.action.delayMs).toBeLessThanOrEqual(policy.maxDelayMs);
            expect(step.action.delayMs).toBeGreaterThanOrEqual(0);
            nowMs += step.action.delayMs + gapMs;
          }
        },
      ),
    );
  });
});

describe("describeFailure", () => {
  it("says how the child ended", () => {
    expect(describeFailure({ kind: "exited", exit: { code: null, signal: "SIGKILL" } })).toBe(
      "killed by SIGKILL",
    );
    expect(describeFailure({ kind: "exited", exit: { code: 0, signal: null } })).toBe("exited with code 0");
    expect(describeFailure({ kind: "exited", exit: { code: null, signal: null, reason: "pid gone" } })).toBe(
      "exited (pid gone)",
    );
    expect(describeFailure({ kind: "started" })).toBe("started");
  });
});

describe("restartPolicy: checking a policy", () => {
  it("fills missing fields from the default", () => {
    expect(restartPolicy()).toEqual(DEFAULT_RESTART_POLICY);
    expect(restartPolicy({ attempts: 2 })).toEqual({ ...DEFAULT_RESTART_POLICY, attempts: 2 });
  });

  const refused: [string, unknown, RegExp][] = [
    ["not an object", 5, /must be an object/],
    ["an array", [], /must be an object/],
    ["an unknown field", { retries: 3 }, /unknown field "retries"/],
    ["NaN", { delayMs: Number.NaN }, /delayMs must be a finite number/],
    ["a string number", { attempts: "3" }, /attempts must be a finite number/],
    ["jitter above 1", { jitter: 1.5 }, /jitter must be between 0 and 1/],
    ["a negative delay", { delayMs: -1 }, /delayMs must be a whole number/],
    ["a fractional interval", { intervalMs: 1.5 }, /intervalMs must be a whole number/],
    ["too many attempts", { attempts: 1_001 }, /attempts must be a whole number 0..1000/],
    ["an unknown mode", { mode: "retry" }, /mode must be one of delay, fail/],
    ["a zero interval", { intervalMs: 0 }, /intervalMs must be above 0/],
    ["maxDelayMs below delayMs", { delayMs: 10, maxDelayMs: 5 }, /maxDelayMs \(5\) must be at least/],
    ["delay mode with no attempts", { mode: "delay", attempts: 0 }, /needs attempts of 1 or more/],
  ];
  for (const [what, input, message] of refused)
    it(`refuses ${what} with InvalidSpecError`, () => {
      expect(() => restartPolicy(input)).toThrow(InvalidSpecError);
      expect(() => restartPolicy(input)).toThrow(message);
    });
});
