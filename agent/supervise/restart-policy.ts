/**
 * The restart policy: when to run a child again after it exited, turned unhealthy or failed to
 * start. Pure: `restartStep(history, event, policy, nowMs, rng) -> { history, action }`, with the
 * time handed in and randomness from a seeded Rng, so tests replay exactly. The supervisor feeds it
 * events and carries out its actions on a real clock.
 *
 * Like Nomad's restart tracker: at most `attempts` restarts within any `intervalMs` window; past that,
 * mode "fail" gives up (the supervisor escalates to the parent ring) and mode "delay" waits until the
 * oldest restart leaves the window. Unlike it, each delay grows exponentially from `delayMs` up to
 * `maxDelayMs` with jitter, and a child that stayed healthy for `healthyResetMs` before failing starts
 * over with a clean history (one crash a week never adds up to giving up).
 */
import type { Rng } from "../../rings/index.ts";
import type { ChildExit } from "./driver.ts";
import { InvalidSpecError } from "./errors.ts";

/** What to do once `attempts` restarts happened within `intervalMs`. */
export type RestartMode = "delay" | "fail";

/** The restart modes, for validation and help texts. */
export const RESTART_MODES: readonly RestartMode[] = ["delay", "fail"];

/** How a child is restarted. Build one with `restartPolicy(partial)`, which checks every field. */
export interface RestartPolicy {
  /** Restarts allowed within one `intervalMs` window (0 with mode "fail": never restart). */
  readonly attempts: number;
  /** Length of the sliding window `attempts` counts in. */
  readonly intervalMs: number;
  /** Delay before the first restart after a reset; each further failure doubles it. */
  readonly delayMs: number;
  /** Ceiling of the backoff delay (jitter included). */
  readonly maxDelayMs: number;
  /** Spread of each delay: it is multiplied by a random factor in [1 - jitter, 1 + jitter]; 0..1. */
  readonly jitter: number;
  /** "fail": give up once the window is full; "delay": wait until a restart leaves the window. */
  readonly mode: RestartMode;
  /** A child healthy for at least this long before it fails starts again with an empty history. */
  readonly healthyResetMs: number;
}

/** The policy a child gets when its spec names none. */
export const DEFAULT_RESTART_POLICY: RestartPolicy = {
  attempts: 5,
  intervalMs: 5 * 60_000,
  delayMs: 1_000,
  maxDelayMs: 60_000,
  jitter: 0.25,
  mode: "fail",
  healthyResetMs: 60_000,
};

/** Most restarts one window may allow (keeps the saved history small). */
export const MAX_RESTART_ATTEMPTS = 1_000;
/** Longest window, delay or reset time a policy may name (one week). */
export const MAX_RESTART_POLICY_MS = 7 * 24 * 3_600_000;

/** What the policy remembers about one child. JSON-encodable: the supervisor saves it. */
export interface RestartHistory {
  /** When each restart within the last window was (or is scheduled to be), oldest first, in ms. */
  readonly restartsMs: readonly number[];
  /** Failures since the history was last cleared: the backoff exponent. */
  readonly consecutiveFailures: number;
  /** Since when the current run has been healthy, or null while it is not (yet). */
  readonly healthySinceMs: number | null;
}

/** A child with no failures behind it. */
export const EMPTY_RESTART_HISTORY: RestartHistory = {
  restartsMs: [],
  consecutiveFailures: 0,
  healthySinceMs: null,
};

/** What happened to a child, as the policy sees it. */
export type RestartEvent =
  /** A run began (healthy is not assumed). */
  | { readonly kind: "started" }
  /** The run passed its health checks (or has none, and started). */
  | { readonly kind: "healthy" }
  /** The child exited on its own or was killed by something other than the supervisor. */
  | { readonly kind: "exited"; readonly exit: ChildExit }
  /** The health checks declared the child unhealthy; it is restarted like an exited one. */
  | { readonly kind: "unhealthy"; readonly detail: string }
  /** The driver could not start it; `retryable` false means retrying cannot help (spec is wrong). */
  | { readonly kind: "start-failed"; readonly error: string; readonly retryable: boolean }
  /** An operator restarted or started the child by hand: forget the past. */
  | { readonly kind: "reset" };

/** What the supervisor should do next. */
export type RestartAction =
  | { readonly kind: "none" }
  /** Start the child again after `delayMs`; `attempt` is how many restarts the window now holds. */
  | { readonly kind: "restart"; readonly delayMs: number; readonly attempt: number }
  /** Stop trying; `reason` says why, for the event the mesh layer signs. */
  | { readonly kind: "give-up"; readonly reason: string };

/** The result of one step. */
export interface RestartStep {
  readonly history: RestartHistory;
  readonly action: RestartAction;
}

const NONE: RestartAction = { kind: "none" };

/** A one-line account of a failure event, for reasons and logs. */
export function describeFailure(event: RestartEvent): string {
  switch (event.kind) {
    case "exited": {
      const { code, signal, reason } = event.exit;
      const how =
        signal !== null ? `killed by ${signal}` : code !== null ? `exited with code ${code}` : "exited";
      return reason === undefined ? how : `${how} (${reason})`;
    }
    case "unhealthy":
      return `unhealthy: ${event.detail}`;
    case "start-failed":
      return `start failed: ${event.error}`;
    default:
      return event.kind;
  }
}

/** The backoff before jitter: delayMs * 2^(failures), capped at maxDelayMs. */
export function backoffDelayMs(policy: RestartPolicy, consecutiveFailures: number): number {
  const exponent = Math.min(consecutiveFailures, 52);
  return Math.min(policy.maxDelayMs, policy.delayMs * 2 ** exponent);
}

/**
 * Advance the policy by one event. `started`, `healthy` and `reset` only update the history; the
 * three failures (`exited`, `unhealthy`, `start-failed`) answer restart-after-delay or give-up.
 */
export function restartStep(
  history: RestartHistory,
  event: RestartEvent,
  policy: RestartPolicy,
  nowMs: number,
  rng: Rng,
): RestartStep {
  switch (event.kind) {
    case "reset":
      return { history: EMPTY_RESTART_HISTORY, action: NONE };
    case "started":
      return { history: { ...history, healthySinceMs: null }, action: NONE };
    case "healthy":
      return {
        history: history.healthySinceMs === null ? { ...history, healthySinceMs: nowMs } : history,
        action: NONE,
      };
    default:
      return onFailure(history, event, policy, nowMs, rng);
  }
}

function onFailure(
  previous: RestartHistory,
  event: RestartEvent,
  policy: RestartPolicy,
  nowMs: number,
  rng: Rng,
): RestartStep {
  const healthyLongEnough =
    previous.healthySinceMs !== null && nowMs - previous.healthySinceMs >= policy.healthyResetMs;
  const base = healthyLongEnough ? EMPTY_RESTART_HISTORY : previous;
  const what = describeFailure(event);
  const window = base.restartsMs.filter((t) => t > nowMs - policy.intervalMs);
  const settled: RestartHistory = {
    restartsMs: window,
    consecutiveFailures: base.consecutiveFailures + 1,
    healthySinceMs: null,
  };
  if (event.kind === "start-failed" && !event.retryable)
    return { history: settled, action: { kind: "give-up", reason: `${what}; retrying cannot help` } };

  const backoffMs = backoffDelayMs(policy, base.consecutiveFailures);
  const factor = 1 + policy.jitter * (2 * rng() - 1);
  let delayMs = Math.min(policy.maxDelayMs, Math.max(0, Math.round(backoffMs * factor)));
  if (window.length >= policy.attempts) {
    if (policy.mode === "fail")
      return {
        history: settled,
        action: {
          kind: "give-up",
          reason: `${what} after ${window.length} restarts within ${policy.intervalMs} ms (policy allows ${policy.attempts})`,
        },
      };
    // mode "delay": wait at least until the oldest restart leaves the window.
    const oldestMs = window[0] ?? nowMs;
    delayMs = Math.max(delayMs, oldestMs + policy.intervalMs - nowMs);
  }
  const restartAtMs = nowMs + delayMs;
  const restartsMs = [...window, restartAtMs].filter((t) => t > restartAtMs - policy.intervalMs);
  return {
    history: { ...settled, restartsMs },
    action: { kind: "restart", delayMs, attempt: restartsMs.length },
  };
}

type NumberField = Exclude<keyof RestartPolicy, "mode">;
const NUMBER_FIELDS: readonly NumberField[] = [
  "attempts",
  "intervalMs",
  "delayMs",
  "maxDelayMs",
  "jitter",
  "healthyResetMs",
];

/**
 * A complete, checked policy from a partial one (missing fields take DEFAULT_RESTART_POLICY's).
 * InvalidSpecError names the first bad field and what it must be; unknown fields are refused.
 */
export function restartPolicy(partial: unknown = {}): RestartPolicy {
  if (typeof partial !== "object" || partial === null || Array.isArray(partial))
    throw new InvalidSpecError("restart policy must be an object of fields, e.g. { attempts: 5 }");
  for (const key of Object.keys(partial))
    if (key !== "mode" && !NUMBER_FIELDS.includes(key as NumberField))
      throw new InvalidSpecError(
        `restart policy has an unknown field "${key}"; known: ${[...NUMBER_FIELDS, "mode"].join(", ")}`,
      );
  const p = { ...DEFAULT_RESTART_POLICY, ...(partial as Partial<RestartPolicy>) };
  for (const field of NUMBER_FIELDS) {
    const value = p[field];
    if (typeof value !== "number" || !Number.isFinite(value))
      throw new InvalidSpecError(`restart policy ${field} must be a finite number, got ${String(value)}`);
    if (field === "jitter") {
      if (value < 0 || value > 1)
        throw new InvalidSpecError(`restart policy jitter must be between 0 and 1, got ${value}`);
      continue;
    }
    const max = field === "attempts" ? MAX_RESTART_ATTEMPTS : MAX_RESTART_POLICY_MS;
    if (!Number.isSafeInteger(value) || value < 0 || value > max)
      throw new InvalidSpecError(`restart policy ${field} must be a whole number 0..${max}, got ${value}`);
  }
  if (!RESTART_MODES.includes(p.mode))
    throw new InvalidSpecError(
      `restart policy mode must be one of ${RESTART_MODES.join(", ")}, got ${String(p.mode)}`,
    );
  if (p.intervalMs === 0) throw new InvalidSpecError("restart policy intervalMs must be above 0");
  if (p.maxDelayMs < p.delayMs)
    throw new InvalidSpecError(
      `restart policy maxDelayMs (${p.maxDelayMs}) must be at least delayMs (${p.delayMs})`,
    );
  if (p.mode === "delay" && p.attempts === 0)
    throw new InvalidSpecError('restart policy mode "delay" needs attempts of 1 or more');
  return p;
}
