/**
 * The `proc` strategy (development): a plain child process of the agent's user.
 *
 * - Environment replaced: only the spec's `env`, `PORT`, `HOME` (= the child's directory) and `PATH`
 *   (the driver's, unless the spec sets one). Working directory: the child's directory.
 * - stdout and stderr go straight to the log file through an O_APPEND fd (child-log.ts).
 * - Its own process group (detached), so it outlives an agent restart; stop() signals the whole
 *   group, and when the leader exits whatever it left in its group is killed too.
 * - The handle saves pid, start time (field 22 of /proc/PID/stat) and boot id: `recover` adopts a
 *   process only if all three match, never a recycled pid. A recovered child is not the agent's own
 *   child, so `wait` polls /proc for it and cannot know its exit status.
 *
 * - The child's environment also holds its run's mark (CHILD_RUN_ENV), which its descendants inherit:
 *   when the agent died before it saved the handle, `sweep` ends the marked processes and the process
 *   groups they lead (the child's own group holds those that replaced their environment).
 *
 * Limits cannot be enforced (use unix-user or jail): a spec with limits is refused.
 */
import { spawn } from "node:child_process";
import { closeSync, readFileSync } from "node:fs";
import { access, constants, stat } from "node:fs/promises";
import { delimiter, isAbsolute, join } from "node:path";
import { openChildLogFd } from "./child-log.ts";
import type {
  ChildExit,
  ChildHandle,
  ChildSpec,
  Driver,
  DriverFactory,
  LaunchSweeper,
  StartRequest,
  SweepRequest,
} from "./driver.ts";
import {
  ChildStartError,
  InvalidSpecError,
  MissingBinaryError,
  SuperviseError,
  UnenforceableLimitError,
} from "./errors.ts";
import { runMarkEnv, sweepRun } from "./run-sweep.ts";
import { childSpec } from "./spec.ts";

/** Registry name of this strategy. */
export const PROC_DRIVER_NAME = "proc";
/** Layout of `handle.state` this driver writes (see ProcHandleState). */
export const PROC_HANDLE_VERSION = 1;
/** PATH children get unless the driver options or their spec say otherwise. */
export const DEFAULT_CHILD_PATH = "/usr/local/bin:/usr/bin:/bin";
/** How often `wait` checks on a recovered child by default. */
export const DEFAULT_PROC_POLL_MS = 100;
/** Variables the driver sets itself; a spec may not. */
export const PROC_RESERVED_ENV: readonly string[] = ["PORT", "HOME"];

/** Options of the proc strategy. */
export interface ProcOptions {
  /** PATH of children, also used to find a bare program name (default DEFAULT_CHILD_PATH). */
  readonly path?: string;
  /** How often `wait` polls a child recovered from an earlier agent (default DEFAULT_PROC_POLL_MS). */
  readonly pollIntervalMs?: number;
}

/** What a proc handle's `state` holds (version 1). */
export interface ProcHandleState {
  /** The process group (the child leads it: equal to its pid). */
  readonly pgid: number;
  /** Field 22 of /proc/PID/stat at start: clock ticks since boot. */
  readonly startTicks: number;
  /** /proc/sys/kernel/random/boot_id at start: start ticks only mean something within one boot. */
  readonly bootId: string;
  /** The program that was run, resolved to a path. */
  readonly binary: string;
}

/** Start ticks (field 22) and state letter (field 3) of a process, or null if there is none. */
export function readPidStat(pid: number): { startTicks: number; state: string } | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return null;
  }
  // The command name (field 2) may hold spaces and ")": count fields from the last ")".
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  const startTicks = Number(fields[19]);
  const state = fields[0] ?? "";
  return Number.isSafeInteger(startTicks) ? { startTicks, state } : null;
}

/** This boot's id; start ticks of processes are comparable only within one boot. */
export function readBootId(): string {
  return readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
}

/** True while the process `pid` that started at `startTicks` lives (zombies count as exited). */
export function sameProcessRunning(pid: number, startTicks: number): boolean {
  const now = readPidStat(pid);
  return now !== null && now.startTicks === startTicks && now.state !== "Z" && now.state !== "X";
}

/**
 * Find the program of a command: an absolute path as is, a bare name in `path`. MissingBinaryError if
 * it is not an executable file; InvalidSpecError for a relative path ("./app" depends on the cwd).
 */
export async function resolveBinary(program: string, path: string): Promise<string> {
  const executable = async (candidate: string) => {
    try {
      await access(candidate, constants.X_OK);
      return (await stat(candidate)).isFile();
    } catch {
      return false;
    }
  };
  if (program.includes("/")) {
    if (!isAbsolute(program))
      throw new InvalidSpecError(
        `program "${program}" must be an absolute path or a bare name found in PATH`,
      );
    if (await executable(program)) return program;
    throw new MissingBinaryError(
      `program ${program} does not exist or is not executable; install it or fix the path`,
    );
  }
  for (const dir of path.split(delimiter))
    if (dir !== "" && (await executable(join(dir, program)))) return join(dir, program);
  throw new MissingBinaryError(
    `program "${program}" is not in PATH (${path}); install it or give an absolute path`,
  );
}

/**
 * Whether process group `s.pgid` can only be what is left of this handle's child: its leader is gone
 * (Linux never hands out a pid still in use as a group id, so the members left are the child's), or
 * the leader is the child itself (same start time). A live process of another start time at that
 * pid means the child's group is long gone and the pid was reused: that group is someone else's.
 */
function groupIsTheChilds(s: ProcHandleState): boolean {
  const leader = readPidStat(s.pgid);
  return leader === null || leader.startTicks === s.startTicks;
}

function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // No such group: everything in it is gone already.
  }
}

function procState(handle: ChildHandle): ProcHandleState {
  if (handle.driver !== PROC_DRIVER_NAME || handle.version !== PROC_HANDLE_VERSION)
    throw new SuperviseError(
      `handle of ${handle.name} is ${handle.driver} v${handle.version}; this proc driver reads only v${PROC_HANDLE_VERSION}`,
    );
  const s = handle.state as Partial<ProcHandleState>;
  if (
    !Number.isSafeInteger(s.pgid) ||
    (s.pgid as number) <= 1 ||
    !Number.isSafeInteger(s.startTicks) ||
    typeof s.bootId !== "string" ||
    typeof s.binary !== "string"
  )
    throw new SuperviseError(`handle of ${handle.name} has a malformed proc state`);
  return s as ProcHandleState;
}

/** The proc strategy as a factory: `proc({ path })`. */
export function proc(options: ProcOptions = {}): DriverFactory {
  return () => new ProcDriver(options);
}

/** A proc driver; prefer the `proc(options)` factory. `close()` stops its polling. */
export class ProcDriver implements Driver, LaunchSweeper {
  readonly name = PROC_DRIVER_NAME;
  readonly #path: string;
  readonly #pollMs: number;
  #bootId: string | undefined;
  /** Exits of children this driver spawned, or is polling, by "pid:startTicks". */
  readonly #exits = new Map<string, Promise<ChildExit>>();
  readonly #pollTimers = new Set<ReturnType<typeof setTimeout>>();
  #closed = false;

  constructor(options: ProcOptions = {}) {
    this.#path = options.path ?? DEFAULT_CHILD_PATH;
    this.#pollMs = options.pollIntervalMs ?? DEFAULT_PROC_POLL_MS;
  }

  #boot(): string {
    this.#bootId ??= readBootId();
    return this.#bootId;
  }

  async validate(spec: ChildSpec): Promise<void> {
    const checked = childSpec(spec);
    for (const key of PROC_RESERVED_ENV)
      if (checked.env?.[key] !== undefined)
        throw new InvalidSpecError(
          `env ${key} is set by the proc driver (PORT: the allocated port, HOME: the child's directory)`,
        );
    const limits = Object.keys(checked.limits ?? {});
    if (limits.length > 0)
      throw new UnenforceableLimitError(
        `the proc strategy enforces no limits (asked for ${limits.join(", ")}); use the unix-user or jail strategy`,
      );
    const settings = Object.keys(checked.driver ?? {});
    if (settings.length > 0)
      throw new InvalidSpecError(`the proc strategy takes no driver settings, got ${settings.join(", ")}`);
    await resolveBinary(checked.command[0]!, checked.env?.PATH ?? this.#path);
  }

  async start(request: StartRequest): Promise<ChildHandle> {
    const { spec, port, dir, logPath } = request;
    await this.validate(spec);
    const env: Record<string, string> = {
      PATH: this.#path,
      ...spec.env,
      PORT: String(port),
      HOME: dir,
      ...runMarkEnv(request.runId),
    };
    const binary = await resolveBinary(spec.command[0]!, env.PATH!);
    const bootId = this.#boot();
    const fd = openChildLogFd(logPath);
    try {
      const child = spawn(binary, spec.command.slice(1), {
        argv0: spec.command[0],
        cwd: dir,
        env,
        detached: true,
        stdio: ["ignore", fd, fd],
      });
      const exited = new Promise<ChildExit>((resolve) =>
        child.once("exit", (code, signal) => {
          if (child.pid !== undefined) killGroup(child.pid, "SIGKILL"); // what the leader left behind
          resolve({ code, signal });
        }),
      );
      const startTicks = await new Promise<number>((resolve, reject) => {
        child.once("error", reject);
        // Read in the 'spawn' callback itself: the child cannot have been reaped yet, so its
        // /proc entry (a zombie at worst) is still there.
        child.once("spawn", () => {
          const stat = child.pid === undefined ? null : readPidStat(child.pid);
          if (stat === null) reject(new Error(`no /proc entry for pid ${child.pid}`));
          else resolve(stat.startTicks);
        });
      });
      child.unref();
      const pid = child.pid!;
      this.#exits.set(`${pid}:${startTicks}`, exited);
      const state: ProcHandleState = { pgid: pid, startTicks, bootId, binary };
      return {
        driver: this.name,
        name: spec.name,
        version: PROC_HANDLE_VERSION,
        pid,
        startedMs: Date.now(),
        state: { ...state },
      };
    } catch (err) {
      if (err instanceof SuperviseError) throw err;
      throw new ChildStartError(`could not start ${spec.name} (${binary}): ${(err as Error).message}`, {
        cause: err,
      });
    } finally {
      closeSync(fd);
    }
  }

  wait(handle: ChildHandle): Promise<ChildExit> {
    const s = procState(handle);
    const key = `${handle.pid}:${s.startTicks}`;
    let exit = this.#exits.get(key);
    if (exit === undefined) {
      exit = this.#poll(handle.pid, s);
      this.#exits.set(key, exit);
    }
    return exit;
  }

  #alive(pid: number, s: ProcHandleState): boolean {
    return s.bootId === this.#boot() && sameProcessRunning(pid, s.startTicks);
  }

  #poll(pid: number, s: ProcHandleState): Promise<ChildExit> {
    return new Promise((resolve) => {
      const check = () => {
        if (this.#closed) return; // the agent is going away: leave the child be
        if (this.#alive(pid, s)) {
          const timer = setTimeout(() => {
            this.#pollTimers.delete(timer);
            check();
          }, this.#pollMs);
          timer.unref();
          this.#pollTimers.add(timer);
          return;
        }
        killGroup(s.pgid, "SIGKILL");
        resolve({
          code: null,
          signal: null,
          reason: "exited while not the agent's own child; status unknown",
        });
      };
      check();
    });
  }

  async stop(handle: ChildHandle, timeoutMs: number, signal: NodeJS.Signals = "SIGTERM"): Promise<ChildExit> {
    const s = procState(handle);
    if (!this.#alive(handle.pid, s)) {
      if (groupIsTheChilds(s)) killGroup(s.pgid, "SIGKILL"); // what the child left behind
      return (
        this.#exits.get(`${handle.pid}:${s.startTicks}`) ?? {
          code: null,
          signal: null,
          reason: "not running",
        }
      );
    }
    const exited = this.wait(handle);
    killGroup(s.pgid, signal);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), timeoutMs);
    });
    const first = await Promise.race([exited, timedOut]);
    clearTimeout(timer);
    if (first === "timeout") killGroup(s.pgid, "SIGKILL");
    const exit = await exited;
    killGroup(s.pgid, "SIGKILL");
    return exit;
  }

  async recover(handle: ChildHandle): Promise<ChildHandle | null> {
    const s = procState(handle);
    return this.#alive(handle.pid, s) ? handle : null;
  }

  async cleanup(handle: ChildHandle): Promise<void> {
    const s = procState(handle);
    if (!this.#alive(handle.pid, s) && groupIsTheChilds(s)) killGroup(s.pgid, "SIGKILL");
  }

  /** End the marked processes of an interrupted start, and their process groups. */
  sweep(request: SweepRequest): Promise<number> {
    return sweepRun(request.runId);
  }

  /** Stop polling recovered children (their pending waits never resolve). Children keep running. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const timer of this.#pollTimers) clearTimeout(timer);
    this.#pollTimers.clear();
  }
}
