/**
 * What the supervisor saves per child (`child:<name>` in the `children` sublevel), what it reports
 * (`ChildInfo`) and the events it emits. The record holds everything needed to run the child again
 * after an agent restart: the checked spec, strategy, restart policy and health checks, its ports and
 * directory, what the operator wants (running, stopped, removed), the driver's last handle and the
 * restart policy's history. Each change is written as one store batch.
 *
 * `launching` is written before the driver starts a run and cleared in the same write that saves the
 * run's handle: an agent killed between the two leaves a record saying which run to sweep
 * (LaunchSweeper) before it starts another. It is optional in layout version 1 (records written
 * before it existed read as null; an older agent reading a newer record drops it).
 */
import * as v from "valibot";
import type { ChildExit, ChildHandle, ChildSpec } from "./driver.ts";
import type { HealthCheck, HealthStatus } from "./health.ts";
import type { RestartHistory, RestartPolicy } from "./restart-policy.ts";

/** Key prefix of child records in the `children` sublevel. */
export const CHILD_KEY_PREFIX = "child:";
/** Layout version of ChildRecord. */
export const CHILD_RECORD_VERSION = 1;

/** The store key of a child's record. */
export function childKey(name: string): string {
  return CHILD_KEY_PREFIX + name;
}

/** What the operator asked for; "removed" means a removal is under way (finished at the next open). */
export type DesiredState = "running" | "stopped" | "removed";

/** Why the supervisor stopped trying. */
export interface GiveUp {
  readonly atMs: number;
  readonly reason: string;
}

/** A start under way: its run's mark (StartRequest.runId) and when it began. */
export interface LaunchMark {
  readonly atMs: number;
  readonly runId: string;
}

/** One child as saved. */
export interface ChildRecord {
  readonly version: number;
  readonly spec: ChildSpec;
  readonly strategy: string;
  readonly restartPolicy: RestartPolicy;
  readonly health: readonly HealthCheck[];
  /** The first port of its block (PORT). */
  readonly port: number;
  /** How many consecutive ports from `port` it holds; absent in records made before blocks: 1. */
  readonly portCount?: number;
  /** The child's own directory (0700). */
  readonly dir: string;
  readonly createdMs: number;
  readonly desired: DesiredState;
  /** The driver's handle of the latest run, kept after it ends (cleanup needs it); null before any. */
  readonly handle: ChildHandle | null;
  readonly history: RestartHistory;
  /** Automatic restarts so far (operator starts not counted). */
  readonly restarts: number;
  /** Set once the restart policy gave up; cleared by an operator start. */
  readonly gaveUp: GiveUp | null;
  /** How the latest run ended, in words; null while none has. */
  readonly lastExit: string | null;
  /** Set while a start is under way and its handle not yet saved; absent or null otherwise. */
  readonly launching?: LaunchMark | null;
}

const count = v.pipe(v.number(), v.safeInteger(), v.minValue(0));
const handleSchema = v.object({
  driver: v.string(),
  name: v.string(),
  version: count,
  pid: count,
  startedMs: count,
  state: v.record(v.string(), v.unknown()),
});

/**
 * The stored shape of a record. Spec, policy and checks are only shape-checked here; the supervisor
 * checks them fully again (childSpec, restartPolicy, healthChecks) before it acts on them.
 */
export const childRecordSchema = v.object({
  version: v.literal(CHILD_RECORD_VERSION),
  // Loose: env, limits and driver settings must come back from disk as they were written (a strict
  // `object` would drop them silently, and a child would run after an agent restart without its
  // limits). childSpec checks every field again before the supervisor acts on it.
  spec: v.looseObject({ name: v.string(), command: v.array(v.string()) }),
  strategy: v.string(),
  restartPolicy: v.record(v.string(), v.unknown()),
  health: v.array(v.record(v.string(), v.unknown())),
  port: v.pipe(count, v.minValue(1), v.maxValue(65_535)),
  portCount: v.optional(v.pipe(count, v.minValue(1))),
  dir: v.pipe(v.string(), v.minLength(1)),
  createdMs: count,
  desired: v.picklist(["running", "stopped", "removed"]),
  handle: v.nullable(handleSchema),
  history: v.object({
    restartsMs: v.array(v.number()),
    consecutiveFailures: count,
    healthySinceMs: v.nullable(v.number()),
  }),
  restarts: count,
  gaveUp: v.nullable(v.object({ atMs: count, reason: v.string() })),
  lastExit: v.nullable(v.string()),
  launching: v.optional(
    v.nullable(v.object({ atMs: count, runId: v.pipe(v.string(), v.minLength(1), v.maxLength(64)) })),
    null,
  ),
});

/**
 * Where a child stands, as the supervisor sees it now:
 * - `starting`: the driver is starting it;
 * - `running`: a run is under way (see `health` for its checks);
 * - `backoff`: it ended and will be started again at `restartAtMs`;
 * - `stopping`, `stopped`: by the operator's wish;
 * - `failed`: the restart policy gave up, or the child could not be recovered (see `gaveUp`).
 */
export type ChildPhase = "starting" | "running" | "backoff" | "stopping" | "stopped" | "failed";

/** A child as `list()` reports it. */
export interface ChildInfo {
  readonly name: string;
  readonly strategy: string;
  /** Its PORT: the first of the ports it holds. */
  readonly port: number;
  /** How many consecutive ports from `port` it holds (1 for most children). */
  readonly portCount: number;
  readonly dir: string;
  readonly phase: ChildPhase;
  /** Combined status of its health checks during a run; null when not running. */
  readonly health: HealthStatus | null;
  /** Host pid of the current run, when there is one. */
  readonly pid: number | null;
  readonly startedMs: number | null;
  readonly restarts: number;
  readonly restartAtMs: number | null;
  readonly gaveUp: GiveUp | null;
  readonly lastExit: string | null;
}

/** The restart policy gave up on a child: the mesh layer turns this into a signed event. */
export interface ChildGiveUpEvent {
  readonly name: string;
  readonly strategy: string;
  readonly reason: string;
  readonly atMs: number;
  readonly restarts: number;
}

/** Everything that happens to children, for logs and tests. */
export type SupervisorEvent =
  | { readonly kind: "started"; readonly name: string; readonly pid: number; readonly atMs: number }
  | { readonly kind: "recovered"; readonly name: string; readonly pid: number; readonly atMs: number }
  | { readonly kind: "healthy"; readonly name: string; readonly atMs: number }
  | { readonly kind: "unhealthy"; readonly name: string; readonly detail: string; readonly atMs: number }
  | { readonly kind: "exited"; readonly name: string; readonly exit: ChildExit; readonly atMs: number }
  | { readonly kind: "start-failed"; readonly name: string; readonly error: string; readonly atMs: number }
  | {
      readonly kind: "restart-scheduled";
      readonly name: string;
      readonly delayMs: number;
      readonly atMs: number;
    }
  | {
      readonly kind: "swept";
      readonly name: string;
      /** The interrupted run's mark, and how many processes it had left that were ended. */
      readonly runId: string;
      readonly ended: number;
      readonly atMs: number;
    }
  | { readonly kind: "stopped"; readonly name: string; readonly atMs: number }
  | { readonly kind: "removed"; readonly name: string; readonly atMs: number }
  | ({ readonly kind: "gave-up" } & ChildGiveUpEvent)
  | { readonly kind: "error"; readonly name: string; readonly error: string; readonly atMs: number }
  | {
      readonly kind: "record-unreadable";
      readonly key: string;
      readonly error: string;
      readonly atMs: number;
    };
