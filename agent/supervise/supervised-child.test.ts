import { beforeEach, describe, expect, it } from "vitest";
import { seededRng } from "../../rings/index.ts";
import { VirtualClock } from "../virtual-clock.ts";
import {
  CHILD_RECORD_VERSION,
  type ChildGiveUpEvent,
  type ChildRecord,
  type SupervisorEvent,
} from "./child-record.ts";
import type { ChildExit, ChildHandle, Driver, LaunchSweeper, StartRequest, SweepRequest } from "./driver.ts";
import { ChildStartError, MissingBinaryError } from "./errors.ts";
import { EMPTY_RESTART_HISTORY, restartPolicy } from "./restart-policy.ts";
import { SupervisedChild } from "./supervised-child.ts";

const T0 = 1_800_000_000_000;

/** A scripted driver: starts are recorded, exits happen when the test says. */
class ScriptedDriver implements Driver {
  readonly name = "scripted";
  readonly starts: StartRequest[] = [];
  /** The records saved so far when each start was called. */
  readonly savedAtStart: ChildRecord[][] = [];
  readonly recovers: number[] = [];
  readonly stops: number[] = [];
  readonly exits = new Map<number, (exit: ChildExit) => void>();
  readonly waits = new Map<number, Promise<ChildExit>>();
  startErrors: Error[] = [];
  recoverAnswer: ChildHandle | null | Error = null;
  #nextPid = 100;

  async validate(): Promise<void> {}
  async start(request: StartRequest): Promise<ChildHandle> {
    const error = this.startErrors.shift();
    this.savedAtStart.push([...saved]);
    if (error !== undefined) throw error;
    this.starts.push(request);
    return this.#handle(this.#nextPid++, request.spec.name);
  }
  #handle(pid: number, name: string): ChildHandle {
    this.waits.set(pid, new Promise((resolve) => this.exits.set(pid, resolve)));
    return { driver: this.name, name, version: 1, pid, startedMs: T0, state: {} };
  }
  wait(handle: ChildHandle): Promise<ChildExit> {
    return this.waits.get(handle.pid)!;
  }
  async stop(handle: ChildHandle): Promise<ChildExit> {
    this.stops.push(handle.pid);
    this.exits.get(handle.pid)?.({ code: null, signal: "SIGTERM" });
    return this.wait(handle);
  }
  async recover(handle: ChildHandle): Promise<ChildHandle | null> {
    this.recovers.push(handle.pid);
    if (this.recoverAnswer instanceof Error) throw this.recoverAnswer;
    if (this.recoverAnswer !== null)
      this.waits.set(handle.pid, new Promise((r) => this.exits.set(handle.pid, r)));
    return this.recoverAnswer;
  }
  async cleanup(): Promise<void> {}
  /** Make the run with `pid` exit. */
  crash(pid: number, code = 1): void {
    this.exits.get(pid)!({ code, signal: null });
  }
}

/** A scripted driver that can also sweep: sweeps are recorded and answer `sweepAnswer`. */
class SweepingDriver extends ScriptedDriver implements LaunchSweeper {
  readonly sweeps: SweepRequest[] = [];
  sweepAnswer: number | Error = 0;
  async sweep(request: SweepRequest): Promise<number> {
    this.sweeps.push(request);
    if (this.sweepAnswer instanceof Error) throw this.sweepAnswer;
    return this.sweepAnswer;
  }
}

const STALE: ChildHandle = { driver: "scripted", name: "app", version: 1, pid: 7, startedMs: T0, state: {} };

const settle = async () => {
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
};

let clock: VirtualClock;
let driver: ScriptedDriver;
let saved: ChildRecord[];
let events: SupervisorEvent[];
let gaveUp: ChildGiveUpEvent[];

function record(changes: Partial<ChildRecord> = {}): ChildRecord {
  return {
    version: CHILD_RECORD_VERSION,
    spec: { name: "app", command: ["/bin/app"] },
    strategy: "scripted",
    restartPolicy: restartPolicy({
      attempts: 2,
      intervalMs: 60_000,
      delayMs: 1_000,
      maxDelayMs: 8_000,
      jitter: 0,
    }),
    health: [],
    port: 40_000,
    dir: "/children/app",
    createdMs: T0,
    desired: "running",
    handle: null,
    history: EMPTY_RESTART_HISTORY,
    restarts: 0,
    gaveUp: null,
    lastExit: null,
    ...changes,
  };
}

function child(r = record()): SupervisedChild {
  return new SupervisedChild(r, {
    driver,
    clock,
    rng: seededRng(1),
    stopTimeoutMs: 1_000,
    logPath: "/children/app/log/current",
    persist: async (next) => {
      saved.push(next);
    },
    emit: (e) => events.push(e),
    giveUp: (e) => gaveUp.push(e),
  });
}

beforeEach(() => {
  clock = new VirtualClock({ startMs: T0 });
  driver = new ScriptedDriver();
  saved = [];
  events = [];
  gaveUp = [];
});

describe("SupervisedChild with a scripted driver on a virtual clock", () => {
  it("restarts after the policy's delay, and gives up once the window is full", async () => {
    const c = child();
    await c.begin();
    expect(driver.starts.length).toBe(1);
    expect(c.info()).toMatchObject({ phase: "running", pid: 100, health: "healthy" });

    driver.crash(100);
    await settle();
    expect(c.info()).toMatchObject({ phase: "backoff", restartAtMs: T0 + 1_000, pid: null });
    clock.advance(999);
    await settle();
    expect(driver.starts.length).toBe(1);
    clock.advance(1);
    await settle();
    expect(driver.starts.length).toBe(2);
    expect(c.info()).toMatchObject({ phase: "running", pid: 101, restarts: 1 });

    driver.crash(101);
    await settle();
    clock.advance(2_000); // the backoff doubled
    await settle();
    expect(driver.starts.length).toBe(3);
    driver.crash(102, 7);
    await settle();
    expect(gaveUp).toEqual([
      {
        name: "app",
        strategy: "scripted",
        reason: "exited with code 7 after 2 restarts within 60000 ms (policy allows 2)",
        atMs: T0 + 3_000,
        restarts: 2,
      },
    ]);
    expect(c.info()).toMatchObject({ phase: "failed", restarts: 2, lastExit: "exited with code 7" });
    expect(saved.at(-1)!.gaveUp).toEqual({ atMs: T0 + 3_000, reason: gaveUp[0]!.reason });
    expect(clock.pending).toBe(0);
  });

  it("an operator stop is not a failure: no restart, and the run's late exit is ignored", async () => {
    const c = child();
    await c.begin();
    await c.stop();
    expect(driver.stops).toEqual([100]);
    await settle();
    expect(c.info()).toMatchObject({ phase: "stopped", pid: null });
    expect(saved.at(-1)!.desired).toBe("stopped");
    expect(clock.pending).toBe(0);
    expect(events.map((e) => e.kind)).toEqual(["started", "healthy", "stopped"]);
  });

  it("a start error that retrying cannot fix gives up at once; a transient one is retried", async () => {
    driver.startErrors = [new ChildStartError("EAGAIN")];
    const c = child();
    await c.begin();
    expect(c.info().phase).toBe("backoff");
    clock.advance(1_000);
    await settle();
    expect(c.info().phase).toBe("running");

    const other = child(record({ spec: { name: "other", command: ["/gone"] } }));
    driver.startErrors = [new MissingBinaryError("program /gone does not exist")];
    await other.begin();
    expect(other.info().phase).toBe("failed");
    expect(gaveUp.map((g) => g.reason)).toEqual([
      "start failed: program /gone does not exist; retrying cannot help",
    ]);
  });

  it("recover reattaches a live run without starting anything", async () => {
    const handle: ChildHandle = {
      driver: "scripted",
      name: "app",
      version: 1,
      pid: 7,
      startedMs: T0,
      state: {},
    };
    driver.recoverAnswer = handle;
    const c = child(record({ handle }));
    await c.recover();
    expect(driver.starts).toEqual([]);
    expect(c.info()).toMatchObject({ phase: "running", pid: 7 });
    expect(events[0]).toMatchObject({ kind: "recovered", pid: 7 });
    driver.crash(7);
    await settle();
    expect(c.info().phase).toBe("backoff");
  });

  it("recover treats a run that is gone as an exit, and stops a live run the operator had stopped", async () => {
    const handle: ChildHandle = {
      driver: "scripted",
      name: "app",
      version: 1,
      pid: 7,
      startedMs: T0,
      state: {},
    };
    driver.recoverAnswer = null;
    const gone = child(record({ handle }));
    await gone.recover();
    expect(gone.info()).toMatchObject({
      phase: "backoff",
      lastExit: "exited (gone while the agent was down)",
    });
    expect(driver.starts).toEqual([]);

    driver.recoverAnswer = handle;
    const stopped = child(record({ handle, desired: "stopped" }));
    await stopped.recover();
    expect(driver.stops).toEqual([7]);
    expect(stopped.info().phase).toBe("stopped");
  });

  it("a run that cannot be recovered is failed, never started twice", async () => {
    const handle: ChildHandle = {
      driver: "scripted",
      name: "app",
      version: 9,
      pid: 7,
      startedMs: T0,
      state: {},
    };
    driver.recoverAnswer = new Error("handle v9 is newer than this driver");
    const c = child(record({ handle }));
    await c.recover();
    expect(driver.starts).toEqual([]);
    expect(c.info().phase).toBe("failed");
    expect(gaveUp[0]!.reason).toBe(
      "cannot recover its scripted run (pid 7): handle v9 is newer than this driver",
    );
  });

  it("after close nothing more happens: no restart timer fires", async () => {
    const c = child();
    await c.begin();
    driver.crash(100);
    await settle();
    expect(c.info().phase).toBe("backoff");
    await c.close();
    clock.advance(60_000);
    await settle();
    expect(driver.starts.length).toBe(1);
  });
});

describe("SupervisedChild and a start the agent's death interrupted", () => {
  it("saves the start as under way, with the mark the driver gets, before the driver starts it", async () => {
    const c = child();
    await c.begin();
    const before = driver.savedAtStart[0]!.at(-1)!;
    expect(before.handle).toBeNull();
    expect(before.launching?.runId).toMatch(/^[0-9a-f-]{36}$/);
    expect(driver.starts[0]!.runId).toBe(before.launching?.runId);
    // The same write that saves the handle clears it.
    expect(saved.at(-1)).toMatchObject({ handle: { pid: 100 }, launching: null });
    expect(c.record.launching).toBeNull();
    driver.crash(100);
    await settle();
    clock.advance(1_000);
    await settle();
    expect(driver.starts[1]!.runId).not.toBe(driver.starts[0]!.runId);
  });

  it("recover sweeps the interrupted run first, never recovers the older handle, and starts once", async () => {
    const sweeper = new SweepingDriver();
    driver = sweeper;
    sweeper.sweepAnswer = 2;
    const c = child(record({ handle: STALE, launching: { atMs: T0, runId: "run-1" } }));
    await c.recover();
    expect(sweeper.sweeps).toEqual([{ spec: record().spec, dir: "/children/app", runId: "run-1" }]);
    expect(sweeper.recovers).toEqual([]);
    expect(events.map((e) => e.kind)).toEqual(["swept", "started"]);
    expect(events[0]).toMatchObject({ runId: "run-1", ended: 2 });
    expect(sweeper.starts.length).toBe(1);
    expect(sweeper.savedAtStart[0]!.at(-1)!.launching?.runId).toBe(sweeper.starts[0]!.runId);
    expect(c.info()).toMatchObject({ phase: "running", pid: 100 });
    expect(c.record.launching).toBeNull();
  });

  it("a stopped child is swept and stays stopped; a failing sweep fails the child and starts nothing", async () => {
    const sweeper = new SweepingDriver();
    driver = sweeper;
    const stopped = child(record({ desired: "stopped", launching: { atMs: T0, runId: "run-2" } }));
    await stopped.recover();
    expect(sweeper.sweeps.map((r) => r.runId)).toEqual(["run-2"]);
    expect(stopped.info().phase).toBe("stopped");
    expect(stopped.record.launching).toBeNull();

    sweeper.sweepAnswer = new Error("pid 9 still there");
    const failing = child(record({ launching: { atMs: T0, runId: "run-3" } }));
    await failing.recover();
    expect(sweeper.starts).toEqual([]);
    expect(failing.info().phase).toBe("failed");
    expect(gaveUp[0]!.reason).toBe(
      "cannot end what its interrupted start (run run-3) left: pid 9 still there",
    );
    // Still marked, so the next agent (or an operator start) sweeps again before starting.
    expect(failing.record.launching?.runId).toBe("run-3");
    sweeper.sweepAnswer = 1;
    await failing.start();
    expect(sweeper.sweeps.map((r) => r.runId)).toEqual(["run-2", "run-3", "run-3"]);
    expect(sweeper.starts.length).toBe(1);
  });

  it("a driver without the sweep ability says so, then the child starts", async () => {
    const c = child(record({ launching: { atMs: T0, runId: "run-4" } }));
    await c.recover();
    expect(events[0]).toMatchObject({
      kind: "error",
      error: "its start (run run-4) was interrupted, and the scripted driver cannot find what it left",
    });
    expect(driver.starts.length).toBe(1);
  });
});
