/**
 * One supervised child's life: start it through its driver, watch its exit and its health checks,
 * feed what happens to the restart policy and carry out its answer on the clock (restart after a
 * delay, or give up and tell the supervisor). Every operation and every event of a child runs one at
 * a time on its own queue, so an exit, a health verdict, a timer and an operator's stop never
 * interleave. Each run has a number; callbacks of an earlier run are ignored.
 *
 * A start is saved as under way before the driver starts it; one an agent's death interrupted is swept
 * before anything else (interrupted-start.ts).
 */
import type { Rng } from "../../rings/index.ts";
import type { Clock, TimerId } from "../clock.ts";
import type {
  ChildGiveUpEvent,
  ChildInfo,
  ChildPhase,
  ChildRecord,
  DesiredState,
  SupervisorEvent,
} from "./child-record.ts";
import type { ChildExit, ChildHandle, Driver } from "./driver.ts";
import { InvalidSpecError, MissingBinaryError, UnenforceableLimitError } from "./errors.ts";
import type { HealthStatus } from "./health.ts";
import { HealthMonitor } from "./health-monitor.ts";
import type { Prober } from "./health-probe.ts";
import { newLaunchMark, sweepInterruptedStart } from "./interrupted-start.ts";
import { DEFAULT_CHILD_PATH } from "./proc.ts";
import { describeFailure, EMPTY_RESTART_HISTORY, type RestartEvent, restartStep } from "./restart-policy.ts";

/** What a SupervisedChild needs from its supervisor. */
export interface SupervisedChildDeps {
  readonly driver: Driver;
  readonly clock: Clock;
  readonly rng: Rng;
  /** How long stop() waits after SIGTERM before SIGKILL. */
  readonly stopTimeoutMs: number;
  /** Where the child's stdout/stderr go. */
  readonly logPath: string;
  /** How health checks probe (default: the real probes). */
  readonly prober?: Prober;
  /** Save the record (one store batch). */
  persist(record: ChildRecord): Promise<void>;
  emit(event: SupervisorEvent): void;
  giveUp(event: ChildGiveUpEvent): void;
}

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));
/** Start errors that no retry can fix: the spec or the machine must change first. */
const retryable = (err: unknown): boolean =>
  !(
    err instanceof InvalidSpecError ||
    err instanceof MissingBinaryError ||
    err instanceof UnenforceableLimitError
  );

/** One child under supervision. The Supervisor makes these; see supervisor.ts. */
export class SupervisedChild {
  readonly #deps: SupervisedChildDeps;
  #record: ChildRecord;
  #phase: ChildPhase = "stopped";
  #run = 0;
  #live: ChildHandle | null = null;
  #monitor: HealthMonitor | null = null;
  #restartTimer: TimerId | null = null;
  #restartAtMs: number | null = null;
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;

  constructor(record: ChildRecord, deps: SupervisedChildDeps) {
    this.#record = record;
    this.#deps = deps;
  }

  /** The saved record as it is now. */
  get record(): ChildRecord {
    return this.#record;
  }

  /** The child's name. */
  get name(): string {
    return this.#record.spec.name;
  }

  /** The handle of the run under way, if any. */
  get liveHandle(): ChildHandle | null {
    return this.#live;
  }

  /** A snapshot for list(). */
  info(): ChildInfo {
    const r = this.#record;
    return {
      name: r.spec.name,
      strategy: r.strategy,
      port: r.port,
      portCount: r.portCount ?? 1,
      dir: r.dir,
      phase: this.#phase,
      health: this.#live === null ? null : (this.#monitor?.status ?? null),
      pid: this.#live?.pid ?? null,
      startedMs: this.#live?.startedMs ?? null,
      restarts: r.restarts,
      restartAtMs: this.#phase === "backoff" ? this.#restartAtMs : null,
      gaveUp: r.gaveUp,
      lastExit: r.lastExit,
    };
  }

  /** Run `fn` after everything queued for this child before it. */
  serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** First start after create. */
  begin(): Promise<void> {
    return this.serial(() => this.#launch(false));
  }

  /** Operator start: forget past failures and start unless a run is under way. */
  start(): Promise<void> {
    return this.serial(async () => {
      if (this.#live !== null || this.#phase === "starting") return;
      this.#cancelRestart();
      await this.#save({ desired: "running", gaveUp: null, history: EMPTY_RESTART_HISTORY });
      await this.#launch(false);
    });
  }

  /** Operator stop (or the first step of removal with `desired` "removed"). */
  stop(desired: Exclude<DesiredState, "running"> = "stopped"): Promise<void> {
    return this.serial(async () => {
      this.#phase = "stopping";
      await this.#halt();
      await this.#save({ desired });
      this.#phase = "stopped";
      this.#deps.emit({ kind: "stopped", name: this.name, atMs: this.#deps.clock.now() });
    });
  }

  /**
   * Removal: save `desired: "removed"` (so a restarted agent finishes the job), stop the run, then run
   * `cleanup` (driver cleanup, directory, port, record). The child is closed afterwards.
   */
  remove(cleanup: (lastHandle: ChildHandle | null) => Promise<void>): Promise<void> {
    return this.serial(async () => {
      this.#phase = "stopping";
      this.#cancelRestart();
      if (this.#record.desired !== "removed") await this.#save({ desired: "removed" });
      await this.#halt();
      this.#phase = "stopped";
      await cleanup(this.#record.handle);
      this.#closed = true;
    });
  }

  /** Operator restart: stop the run if any, forget past failures, start. */
  restart(): Promise<void> {
    return this.serial(async () => {
      this.#phase = "stopping";
      await this.#halt();
      await this.#save({ desired: "running", gaveUp: null, history: EMPTY_RESTART_HISTORY });
      await this.#launch(false);
    });
  }

  /**
   * After an agent restart: reattach to the saved run if it still lives, otherwise treat it as an
   * exit (the restart policy decides), never starting a second copy of a live one.
   */
  recover(): Promise<void> {
    return this.serial(async () => {
      const r = this.#record;
      const now = this.#deps.clock.now();
      // An interrupted start goes first; the handle saved before it is of a run that had ended.
      if (!(await this.#sweepInterrupted())) return;
      if (r.gaveUp !== null) {
        this.#phase = "failed";
        return;
      }
      if (r.handle !== null && (r.launching ?? null) === null) {
        let recovered: ChildHandle | null;
        try {
          recovered = await this.#deps.driver.recover(r.handle);
        } catch (err) {
          await this.#fail(`cannot recover its ${r.strategy} run (pid ${r.handle.pid}): ${message(err)}`);
          return;
        }
        if (recovered !== null) {
          this.#live = recovered;
          if (r.desired !== "running") {
            this.#phase = "stopping";
            await this.#halt();
            this.#phase = "stopped";
            return;
          }
          if (recovered !== r.handle) await this.#save({ handle: recovered });
          this.#attach(recovered);
          this.#deps.emit({ kind: "recovered", name: this.name, pid: recovered.pid, atMs: now });
          return;
        }
        if (r.desired === "running") {
          const exit: ChildExit = { code: null, signal: null, reason: "gone while the agent was down" };
          this.#deps.emit({ kind: "exited", name: this.name, exit, atMs: now });
          await this.#failure({ kind: "exited", exit });
          return;
        }
      }
      if (r.desired === "running") await this.#launch(false);
      else this.#phase = "stopped";
    });
  }

  /** Stop watching (timers, health checks, exits) without touching the child, which keeps running. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#cancelRestart();
    this.#monitor?.stop();
    this.#run++;
    await this.serial(async () => undefined);
  }

  async #save(changes: Partial<ChildRecord>): Promise<void> {
    const next = { ...this.#record, ...changes };
    await this.#deps.persist(next);
    this.#record = next;
  }

  #cancelRestart(): void {
    if (this.#restartTimer !== null) this.#deps.clock.clearTimer(this.#restartTimer);
    this.#restartTimer = null;
    this.#restartAtMs = null;
  }

  /** End the run under way, if any, and whatever was scheduled for it. */
  async #halt(): Promise<void> {
    this.#cancelRestart();
    this.#monitor?.stop();
    this.#monitor = null;
    this.#run++; // the run's exit and health callbacks are stale from here on
    const live = this.#live;
    this.#live = null;
    if (live !== null) await this.#deps.driver.stop(live, this.#deps.stopTimeoutMs);
  }

  /** Sweep an interrupted start if the record names one; false when that failed (the child is failed). */
  async #sweepInterrupted(): Promise<boolean> {
    const mark = this.#record.launching ?? null;
    if (mark === null) return true;
    try {
      const { driver, clock } = this.#deps;
      this.#deps.emit(await sweepInterruptedStart(driver, this.#record, mark, () => clock.now()));
    } catch (err) {
      await this.#fail(`cannot end what its interrupted start (run ${mark.runId}) left: ${message(err)}`);
      return false;
    }
    await this.#save({ launching: null });
    return true;
  }

  async #launch(automatic: boolean): Promise<void> {
    if (this.#closed || !(await this.#sweepInterrupted())) return;
    this.#phase = "starting";
    const launching = newLaunchMark(this.#deps.clock.now());
    try {
      await this.#save({ launching });
    } catch (err) {
      this.#phase = "stopped";
      throw err;
    }
    const r = this.#record;
    let handle: ChildHandle;
    try {
      handle = await this.#deps.driver.start({
        spec: r.spec,
        port: r.port,
        dir: r.dir,
        logPath: this.#deps.logPath,
        runId: launching.runId,
      });
    } catch (err) {
      this.#deps.emit({
        kind: "start-failed",
        name: this.name,
        error: message(err),
        atMs: this.#deps.clock.now(),
      });
      await this.#failure({ kind: "start-failed", error: message(err), retryable: retryable(err) });
      return;
    }
    const started = restartStep(
      r.history,
      { kind: "started" },
      r.restartPolicy,
      this.#deps.clock.now(),
      this.#deps.rng,
    );
    try {
      await this.#save({
        handle,
        launching: null,
        history: started.history,
        restarts: r.restarts + (automatic ? 1 : 0),
      });
    } catch (err) {
      // Not saved, so a restarted agent could not find it: do not leave it running.
      await this.#deps.driver.stop(handle, this.#deps.stopTimeoutMs);
      this.#phase = "stopped";
      throw err;
    }
    this.#attach(handle);
    this.#deps.emit({ kind: "started", name: this.name, pid: handle.pid, atMs: this.#deps.clock.now() });
  }

  /** Watch a run: its health checks and its exit. */
  #attach(handle: ChildHandle): void {
    const run = ++this.#run;
    const r = this.#record;
    this.#live = handle;
    this.#phase = "running";
    if (this.#closed) return; // saved already: the next agent recovers it
    const env = { PATH: DEFAULT_CHILD_PATH, ...r.spec.env, PORT: String(r.port), HOME: r.dir };
    const monitor = new HealthMonitor(
      {
        checks: r.health,
        target: { port: r.port, cwd: r.dir, env },
        clock: this.#deps.clock,
        prober: this.#deps.prober,
        onChange: (status, detail) => this.#background(() => this.#onHealth(run, status, detail)),
      },
      this.#deps.clock.now(),
    );
    this.#monitor = monitor;
    monitor.start();
    if (r.health.length === 0) this.#background(() => this.#onHealth(run, "healthy", "no health checks"));
    this.#deps.driver.wait(handle).then(
      (exit) => this.#background(() => this.#onExit(run, exit)),
      (err) =>
        this.#background(() =>
          this.#onExit(run, { code: null, signal: null, reason: `wait failed: ${message(err)}` }),
        ),
    );
  }

  /** Queue `fn`; an error it throws becomes an "error" event (nobody awaits it). */
  #background(fn: () => Promise<void>): void {
    this.serial(fn).catch((err) =>
      this.#deps.emit({ kind: "error", name: this.name, error: message(err), atMs: this.#deps.clock.now() }),
    );
  }

  async #onHealth(run: number, status: HealthStatus, detail: string): Promise<void> {
    if (run !== this.#run || this.#closed) return;
    const now = this.#deps.clock.now();
    if (status === "healthy") {
      const step = restartStep(
        this.#record.history,
        { kind: "healthy" },
        this.#record.restartPolicy,
        now,
        this.#deps.rng,
      );
      if (step.history !== this.#record.history) await this.#save({ history: step.history });
      this.#deps.emit({ kind: "healthy", name: this.name, atMs: now });
      return;
    }
    if (status !== "unhealthy") return;
    this.#deps.emit({ kind: "unhealthy", name: this.name, detail, atMs: now });
    await this.#halt();
    await this.#failure({ kind: "unhealthy", detail });
  }

  async #onExit(run: number, exit: ChildExit): Promise<void> {
    if (run !== this.#run || this.#closed) return;
    this.#monitor?.stop();
    this.#monitor = null;
    this.#run++;
    this.#live = null;
    this.#deps.emit({ kind: "exited", name: this.name, exit, atMs: this.#deps.clock.now() });
    await this.#failure({ kind: "exited", exit });
  }

  /** Ask the restart policy what to do about a failure, and do it. */
  async #failure(event: RestartEvent): Promise<void> {
    if (this.#closed) return;
    const r = this.#record;
    const now = this.#deps.clock.now();
    const step = restartStep(r.history, event, r.restartPolicy, now, this.#deps.rng);
    // A failed start was undone by its driver: nothing of it is left to sweep.
    const ended = { history: step.history, lastExit: describeFailure(event), launching: null };
    if (step.action.kind === "give-up") {
      await this.#save(ended);
      await this.#fail(step.action.reason);
      return;
    }
    if (step.action.kind !== "restart") return;
    const { delayMs } = step.action;
    await this.#save(ended);
    this.#phase = "backoff";
    this.#restartAtMs = now + delayMs;
    const timer: TimerId = this.#deps.clock.setTimer(delayMs, () =>
      this.#background(async () => {
        if (this.#restartTimer !== timer) return;
        this.#restartTimer = null;
        this.#restartAtMs = null;
        await this.#launch(true);
      }),
    );
    this.#restartTimer = timer;
    this.#deps.emit({ kind: "restart-scheduled", name: this.name, delayMs, atMs: now });
  }

  async #fail(reason: string): Promise<void> {
    const atMs = this.#deps.clock.now();
    await this.#save({ gaveUp: { atMs, reason } });
    this.#phase = "failed";
    const event: ChildGiveUpEvent = {
      name: this.name,
      strategy: this.#record.strategy,
      reason,
      atMs,
      restarts: this.#record.restarts,
    };
    this.#deps.emit({ kind: "gave-up", ...event });
    this.#deps.giveUp(event);
  }
}
