import { describe, expect, it } from "vitest";
import { VirtualClock } from "../virtual-clock.ts";
import { InvalidSpecError } from "./errors.ts";
import {
  combineHealth,
  DEFAULT_HEALTH_TIMING,
  type HealthCheck,
  type HealthStatus,
  healthCheck,
  healthChecks,
  healthStep,
  initialHealth,
  probeDelayMs,
  STARTING_PROBE_MIN_MS,
} from "./health.ts";
import { HealthMonitor } from "./health-monitor.ts";
import type { Prober } from "./health-probe.ts";

const T0 = 1_800_000_000_000;
const ok = { ok: true, detail: "http 200" };
const bad = { ok: false, detail: "ECONNREFUSED" };
const check = healthCheck({ kind: "tcp", intervalMs: 1_000, failuresBeforeUnhealthy: 3, graceMs: 5_000 });

describe("healthCheck: checking a check", () => {
  it("fills timing from the defaults and keeps the kind's own fields", () => {
    expect(healthCheck({ kind: "tcp" })).toEqual({ kind: "tcp", ...DEFAULT_HEALTH_TIMING });
    expect(healthCheck({ kind: "http" })).toMatchObject({ kind: "http", path: "/" });
    expect(healthCheck({ kind: "exec", command: ["/bin/true"], timeoutMs: 500 })).toEqual({
      kind: "exec",
      command: ["/bin/true"],
      ...DEFAULT_HEALTH_TIMING,
      timeoutMs: 500,
    });
  });

  const refused: [string, unknown, RegExp][] = [
    ["not an object", "tcp", /must be an object/],
    ["an unknown kind", { kind: "udp" }, /kind must be one of tcp, http, exec/],
    ["a field of another kind", { kind: "tcp", path: "/" }, /unknown field "path"/],
    ["a zero interval", { kind: "tcp", intervalMs: 0 }, /intervalMs must be a whole number 1..3600000/],
    ["a tiny interval", { kind: "tcp", intervalMs: 5 }, /intervalMs must be at least 10/],
    [
      "zero failures",
      { kind: "tcp", failuresBeforeUnhealthy: 0 },
      /failuresBeforeUnhealthy must be a whole number 1..100/,
    ],
    ["a string timeout", { kind: "tcp", timeoutMs: "1s" }, /timeoutMs must be a whole number/],
    ["a relative path", { kind: "http", path: "health" }, /path must start with "\/"/],
    ["a path with a space", { kind: "http", path: "/a b" }, /printable ASCII/],
    ["an empty command", { kind: "exec", command: [] }, /non-empty list of strings/],
    ["a command that is a string", { kind: "exec", command: "/bin/true" }, /non-empty list of strings/],
  ];
  for (const [what, input, message] of refused)
    it(`refuses ${what} with InvalidSpecError`, () => {
      expect(() => healthCheck(input)).toThrow(InvalidSpecError);
      expect(() => healthCheck(input)).toThrow(message);
    });

  it("healthChecks names the bad check in a list and bounds the list", () => {
    expect(() => healthChecks([{ kind: "tcp" }, { kind: "nope" }])).toThrow(/health check 2: .*kind/);
    expect(() => healthChecks(Array.from({ length: 9 }, () => ({ kind: "tcp" })))).toThrow(/at most 8/);
    expect(() => healthChecks({})).toThrow(/must be a list/);
    expect(healthChecks()).toEqual([]);
  });
});

describe("healthStep", () => {
  it("a success makes the run healthy once, and clears failures", () => {
    const a = healthStep(initialHealth(T0), ok, check, T0 + 100);
    expect(a.changed).toBe("healthy");
    expect(a.nextProbeInMs).toBe(1_000);
    const b = healthStep(a.state, bad, check, T0 + 1_100);
    expect(b.state.consecutiveFailures).toBe(1);
    expect(b.changed).toBeNull();
    const c = healthStep(b.state, ok, check, T0 + 2_100);
    expect(c.changed).toBeNull();
    expect(c.state.consecutiveFailures).toBe(0);
  });

  it("failures in the grace period do not count and are probed again quickly", () => {
    let state = initialHealth(T0);
    for (let t = 0; t < 5_000; t += 500) {
      const step = healthStep(state, bad, check, T0 + t);
      expect(step.changed).toBeNull();
      expect(step.nextProbeInMs).toBe(Math.min(1_000, Math.max(STARTING_PROBE_MIN_MS, t / 10)));
      state = step.state;
    }
    expect(state).toMatchObject({ status: "starting", consecutiveFailures: 0, lastDetail: "ECONNREFUSED" });
  });

  it("probes a starting run every tenth of its start-up so far, between the minimum and intervalMs", () => {
    expect(probeDelayMs(check, "starting")).toBe(STARTING_PROBE_MIN_MS);
    expect(probeDelayMs(check, "starting", 50)).toBe(STARTING_PROBE_MIN_MS);
    expect(probeDelayMs(check, "starting", 3_000)).toBe(300);
    expect(probeDelayMs(check, "starting", 60_000)).toBe(1_000);
    expect(probeDelayMs(check, "healthy", 3_000)).toBe(1_000);
  });

  it("the failuresBeforeUnhealthy-th failure in a row after grace makes it unhealthy, for good", () => {
    let state = initialHealth(T0);
    const changes: (HealthStatus | null)[] = [];
    for (let i = 0; i < 3; i++) {
      const step = healthStep(state, bad, check, T0 + 5_000 + i * 1_000);
      expect(step.nextProbeInMs).toBe(1_000);
      changes.push(step.changed);
      state = step.state;
    }
    expect(changes).toEqual([null, null, "unhealthy"]);
    const after = healthStep(state, ok, check, T0 + 9_000);
    expect(after.changed).toBeNull();
    expect(after.state.status).toBe("unhealthy");
  });

  it("a healthy run that fails is not in grace any more", () => {
    const healthy = healthStep(initialHealth(T0), ok, check, T0 + 100).state;
    let state = healthy;
    for (let i = 0; i < 3; i++) state = healthStep(state, bad, check, T0 + 200 + i).state;
    expect(state.status).toBe("unhealthy");
  });

  it("combineHealth: any unhealthy wins, then any starting", () => {
    expect(combineHealth(["healthy", "unhealthy", "starting"])).toBe("unhealthy");
    expect(combineHealth(["healthy", "starting"])).toBe("starting");
    expect(combineHealth(["healthy", "healthy"])).toBe("healthy");
    expect(combineHealth([])).toBe("healthy");
  });
});

/** Let resolved probe promises and their follow-ups run. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe("HealthMonitor on a virtual clock", () => {
  it("reports starting -> healthy -> unhealthy from scripted probe results, then stops probing", async () => {
    const clock = new VirtualClock({ startMs: T0 });
    const script = [bad, ok, ok, bad, bad, bad];
    const probedAtMs: number[] = [];
    const prober: Prober = async () => {
      probedAtMs.push(clock.now());
      return script.shift() ?? ok;
    };
    const changes: [HealthStatus, string][] = [];
    const noGrace: HealthCheck = { ...check, graceMs: 0, failuresBeforeUnhealthy: 3 };
    const monitor = new HealthMonitor(
      { checks: [noGrace], target: { port: 1 }, clock, prober, onChange: (s, d) => changes.push([s, d]) },
      T0,
    );
    expect(monitor.status).toBe("starting");
    monitor.start();
    while (script.length > 0 && clock.step()) await settle();
    await settle();
    expect(changes).toEqual([
      ["healthy", "tcp check: http 200"],
      ["unhealthy", "tcp check: ECONNREFUSED"],
    ]);
    // First probe quickly; the failure before it was healthy counted (no grace), then every interval.
    expect(probedAtMs.map((t) => t - T0)).toEqual([10, 1_010, 2_010, 3_010, 4_010, 5_010]);
    expect(clock.pending).toBe(0); // unhealthy: nothing more is scheduled
  });

  it("stop() cancels probes and drops results in flight", async () => {
    const clock = new VirtualClock({ startMs: T0 });
    let release: (() => void) | undefined;
    const prober: Prober = () =>
      new Promise((resolve) => {
        release = () => resolve(ok);
      });
    const changes: HealthStatus[] = [];
    const monitor = new HealthMonitor(
      { checks: [check], target: { port: 1 }, clock, prober, onChange: (s) => changes.push(s) },
      T0,
    );
    monitor.start();
    clock.step();
    monitor.stop();
    release!();
    await settle();
    expect(changes).toEqual([]);
    expect(clock.pending).toBe(0);
  });

  it("a child with no checks is healthy at once", () => {
    const clock = new VirtualClock({ startMs: T0 });
    const monitor = new HealthMonitor({ checks: [], target: { port: 1 }, clock, onChange: () => {} }, T0);
    monitor.start();
    expect(monitor.status).toBe("healthy");
    expect(clock.pending).toBe(0);
  });
});
