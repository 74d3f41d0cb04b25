/**
 * Health checks: what they are and how their results add up. Three kinds, all aimed at the child's
 * own port on the host: `tcp` (a connection is accepted), `http` (GET `path` answers 2xx or 3xx) and
 * `exec` (a command exits 0). Each has an interval, a timeout, a number of consecutive failures
 * before the child counts as unhealthy, and a grace period after a start during which failures do
 * not count. An unhealthy child is restarted like one that exited (see restart-policy.ts).
 *
 * The logic is pure: `healthStep(state, result, check, nowMs)`; health-probe.ts does the probing and
 * health-monitor.ts runs checks on a clock.
 */
import { InvalidSpecError } from "./errors.ts";

/** The kinds of check. */
export type HealthCheckKind = "tcp" | "http" | "exec";
/** The kinds, for validation and help texts. */
export const HEALTH_CHECK_KINDS: readonly HealthCheckKind[] = ["tcp", "http", "exec"];

/** Timing shared by every kind of check. */
export interface HealthTiming {
  /** Time between probes once the child is healthy (or has failed one). */
  readonly intervalMs: number;
  /** A probe that has not answered after this long failed. */
  readonly timeoutMs: number;
  /** Consecutive failed probes before the child is unhealthy. */
  readonly failuresBeforeUnhealthy: number;
  /** After a start, failures within this long do not count (the child is still coming up). */
  readonly graceMs: number;
}

/** One check of a child. Build one with `healthCheck(partial)`, which checks every field. */
export type HealthCheck =
  | (HealthTiming & { readonly kind: "tcp" })
  | (HealthTiming & { readonly kind: "http"; readonly path: string })
  | (HealthTiming & { readonly kind: "exec"; readonly command: readonly string[] });

/** A check as a caller writes it: the kind, and any fields that differ from the defaults. */
export type HealthCheckInput = { readonly kind: HealthCheckKind } & Partial<HealthTiming> & {
    readonly path?: string;
    readonly command?: readonly string[];
  };

/** Timing a check gets for the fields it does not name. */
export const DEFAULT_HEALTH_TIMING: HealthTiming = {
  intervalMs: 10_000,
  timeoutMs: 2_000,
  failuresBeforeUnhealthy: 3,
  graceMs: 10_000,
};

/**
 * While a run is coming up (its first probe, and failures within its grace period) it is probed
 * every tenth of the time it has been starting, at least this often apart and at most `intervalMs`:
 * readiness is noticed within ~10% of the child's own start-up, and a slow starter is not hammered.
 */
export const STARTING_PROBE_MIN_MS = 10;
/** The starting probe delay is the time since the start divided by this. */
export const STARTING_PROBE_DIVISOR = 10;
/** Shortest interval a check may have. */
export const MIN_HEALTH_INTERVAL_MS = 10;
/** Longest interval, timeout or grace period. */
export const MAX_HEALTH_MS = 3_600_000;
/** Most checks one child may have. */
export const MAX_HEALTH_CHECKS = 8;
/** Longest http path. */
export const MAX_HEALTH_PATH_CHARS = 1024;

const TIMING_FIELDS: readonly (keyof HealthTiming)[] = [
  "intervalMs",
  "timeoutMs",
  "failuresBeforeUnhealthy",
  "graceMs",
];
const KIND_FIELDS: Record<HealthCheckKind, readonly string[]> = {
  tcp: [],
  http: ["path"],
  exec: ["command"],
};

/**
 * A complete, checked health check from a partial one (`{ kind: "http", path: "/health" }`); timing
 * fields left out take DEFAULT_HEALTH_TIMING's. InvalidSpecError names the first bad field.
 */
export function healthCheck(input: unknown): HealthCheck {
  if (typeof input !== "object" || input === null || Array.isArray(input))
    throw new InvalidSpecError('a health check must be an object such as { kind: "tcp" }');
  const fields = input as Record<string, unknown>;
  const kind = fields.kind as HealthCheckKind;
  if (!HEALTH_CHECK_KINDS.includes(kind))
    throw new InvalidSpecError(
      `health check kind must be one of ${HEALTH_CHECK_KINDS.join(", ")}, got ${String(fields.kind)}`,
    );
  const known = ["kind", ...TIMING_FIELDS, ...KIND_FIELDS[kind]];
  for (const key of Object.keys(fields))
    if (!known.includes(key))
      throw new InvalidSpecError(
        `${kind} health check has an unknown field "${key}"; known: ${known.join(", ")}`,
      );
  const timing = { ...DEFAULT_HEALTH_TIMING };
  for (const field of TIMING_FIELDS) {
    const value = fields[field] ?? DEFAULT_HEALTH_TIMING[field];
    const [min, max] =
      field === "failuresBeforeUnhealthy" ? [1, 100] : [field === "graceMs" ? 0 : 1, MAX_HEALTH_MS];
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min || value > max)
      throw new InvalidSpecError(
        `${kind} health check ${field} must be a whole number ${min}..${max}, got ${String(value)}`,
      );
    timing[field] = value;
  }
  if (timing.intervalMs < MIN_HEALTH_INTERVAL_MS)
    throw new InvalidSpecError(`${kind} health check intervalMs must be at least ${MIN_HEALTH_INTERVAL_MS}`);
  if (kind === "tcp") return { kind, ...timing };
  if (kind === "http") {
    const path = fields.path ?? "/";
    if (
      typeof path !== "string" ||
      !path.startsWith("/") ||
      path.length > MAX_HEALTH_PATH_CHARS ||
      !/^[\x21-\x7e]+$/.test(path)
    )
      throw new InvalidSpecError(
        `http health check path must start with "/" and be printable ASCII without spaces, got ${JSON.stringify(path)}`,
      );
    return { kind, path, ...timing };
  }
  const command = fields.command;
  if (
    !Array.isArray(command) ||
    command.length === 0 ||
    !command.every((a) => typeof a === "string" && !a.includes("\0")) ||
    command[0] === ""
  )
    throw new InvalidSpecError(
      'exec health check command must be a non-empty list of strings, e.g. ["/bin/true"]',
    );
  return { kind, command: [...command], ...timing };
}

/** Check a list of health checks (at most MAX_HEALTH_CHECKS); InvalidSpecError says which is bad. */
export function healthChecks(input: unknown = []): HealthCheck[] {
  if (!Array.isArray(input)) throw new InvalidSpecError("health checks must be a list");
  if (input.length > MAX_HEALTH_CHECKS)
    throw new InvalidSpecError(`at most ${MAX_HEALTH_CHECKS} health checks per child, got ${input.length}`);
  return input.map((check, i) => {
    try {
      return healthCheck(check);
    } catch (err) {
      if (err instanceof InvalidSpecError)
        throw new InvalidSpecError(`health check ${i + 1}: ${err.message}`, { cause: err });
      throw err;
    }
  });
}

/** Where a run stands with one check. */
export type HealthStatus = "starting" | "healthy" | "unhealthy";

/** One check's view of the current run. */
export interface HealthState {
  readonly status: HealthStatus;
  /** Failed probes in a row that counted. */
  readonly consecutiveFailures: number;
  /** What the last probe said. */
  readonly lastDetail: string;
  /** When the run started (the grace period runs from here). */
  readonly startedMs: number;
}

/** What a probe found. */
export interface ProbeResult {
  readonly ok: boolean;
  /** "http 200", "ECONNREFUSED", "exit code 1: ..." */
  readonly detail: string;
}

/** One step's outcome: the new state, the status it changed to (if it did), and when to probe next. */
export interface HealthStep {
  readonly state: HealthState;
  readonly changed: HealthStatus | null;
  readonly nextProbeInMs: number;
}

/** The state of a check for a run that started at `startedMs`. */
export function initialHealth(startedMs: number): HealthState {
  return { status: "starting", consecutiveFailures: 0, lastDetail: "not probed yet", startedMs };
}

/** How long to wait before the next probe: quickly while a run is coming up (see STARTING_PROBE_MIN_MS). */
export function probeDelayMs(check: HealthCheck, status: HealthStatus, sinceStartMs = 0): number {
  if (status !== "starting") return check.intervalMs;
  const adaptiveMs = Math.round(sinceStartMs / STARTING_PROBE_DIVISOR);
  return Math.min(check.intervalMs, Math.max(STARTING_PROBE_MIN_MS, adaptiveMs));
}

/**
 * Fold one probe result into a check's state. A success makes the run healthy and clears failures; a
 * failure counts unless it falls in the grace period of a run not yet healthy, and the
 * `failuresBeforeUnhealthy`th in a row makes the run unhealthy (final for that run).
 */
export function healthStep(
  state: HealthState,
  result: ProbeResult,
  check: HealthCheck,
  nowMs: number,
): HealthStep {
  if (state.status === "unhealthy")
    return { state: { ...state, lastDetail: result.detail }, changed: null, nextProbeInMs: check.intervalMs };
  if (result.ok) {
    const next: HealthState = {
      ...state,
      status: "healthy",
      consecutiveFailures: 0,
      lastDetail: result.detail,
    };
    return {
      state: next,
      changed: state.status === "healthy" ? null : "healthy",
      nextProbeInMs: check.intervalMs,
    };
  }
  const inGrace = state.status === "starting" && nowMs - state.startedMs < check.graceMs;
  if (inGrace)
    return {
      state: { ...state, lastDetail: result.detail },
      changed: null,
      nextProbeInMs: probeDelayMs(check, "starting", nowMs - state.startedMs),
    };
  const failures = state.consecutiveFailures + 1;
  const unhealthy = failures >= check.failuresBeforeUnhealthy;
  const next: HealthState = {
    ...state,
    status: unhealthy ? "unhealthy" : state.status,
    consecutiveFailures: failures,
    lastDetail: result.detail,
  };
  return { state: next, changed: unhealthy ? "unhealthy" : null, nextProbeInMs: check.intervalMs };
}

/** The status of a child from its checks' statuses: any unhealthy wins, then any starting. */
export function combineHealth(statuses: readonly HealthStatus[]): HealthStatus {
  if (statuses.includes("unhealthy")) return "unhealthy";
  if (statuses.includes("starting")) return "starting";
  return "healthy";
}
