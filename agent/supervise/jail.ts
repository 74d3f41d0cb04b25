/**
 * The `jail` strategy on Linux: each child runs under bubblewrap in its own user, pid, mount, ipc and
 * uts namespaces, on a read-only root made of the host's system directories, with a private /tmp, a
 * new /proc showing only its own processes, its own hostname, and its own directory as the only
 * writable host path. The agent's state directory is never visible. The host network is kept: the
 * child answers on PORT from the host.
 *
 * Privileges are dropped before the jail is entered: the agent runs as root, and `bwrap
 * --unshare-user` run as root would map the jailed uid to host root. So bwrap runs under `setpriv`
 * as an unprivileged uid — a system user the driver makes per child (`enjail-<name>`, through the
 * account code the unix-user driver uses) and removes in cleanup, or one uid the operator gives — and
 * the user namespace maps that uid to itself.
 *
 * Dying with the parent, and recovery: bwrap's `--die-with-parent` kills the jail when bwrap's parent
 * dies. That parent is not the agent but a small shim (bash, in its own session) that waits for bwrap
 * and exits with its status. The agent can restart without taking its jails down, and `recover`
 * finds them by the shim's pid, start time and boot id; killing the shim (or bwrap) still takes the whole jail
 * down at once. The exit status of a jail that ended while no agent was its parent is unknown.
 *
 * Stopping: the signal goes to the child's process group (bwrap's `--new-session` makes the jail's
 * pid 1 a session leader whose group the child joins); after the timeout the jail's pid 1 is killed,
 * which takes every process in its pid namespace with it.
 *
 * Sweeping an interrupted start (the agent died before it saved the handle): the shim is spawned with
 * the run's mark (CHILD_RUN_ENV) as its only environment, which bwrap's outer process and the jail's
 * pid 1 keep in theirs (bwrap clears only the child's), so `sweep` finds them by it and kills them,
 * and the jail with them; with a per-child user it also kills everything running as that uid.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, readFileSync } from "node:fs";
import { chmod, chown, stat } from "node:fs/promises";
import { posix } from "node:path";
import type { Readable, Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import type {
  ChildExit,
  ChildHandle,
  ChildSpec,
  Driver,
  DriverFactory,
  DriverServices,
  LaunchSweeper,
  StartRequest,
  SweepRequest,
} from "./driver.ts";
import {
  ChildRunningError,
  ChildStartError,
  InvalidSpecError,
  MissingBinaryError,
  SupervisorConfigError,
} from "./errors.ts";
import {
  bwrapOptions,
  checkJailSpec,
  checkUserPrefix,
  DEFAULT_JAIL_PATH,
  DEFAULT_JAIL_USER_PREFIX,
  encodeBwrapArgs,
  JAIL_FDS,
  jailEnv,
  jailExit,
  jailGroup,
  jailPasswd,
  parseJailSpecOptions,
  shimArgv,
} from "./jail-args.ts";
import { JAIL_HANDLE_VERSION, type JailState, readJailState } from "./jail-handle.ts";
import {
  hostFileProbe,
  killQuietly,
  logTail,
  openLog,
  probeRoot,
  readJailPid,
  requireBinary,
  type ShimExit,
} from "./jail-host.ts";
import {
  ETC_PATHS,
  isCleanAbsolutePath,
  type JailMount,
  jailView,
  type RootEntry,
  resolveProgram,
  SYSTEM_ROOT_PATHS,
} from "./jail-view.ts";
import {
  isSameProcessAlive,
  parseProcStat,
  processesOfUid,
  readBootId,
  readProcess,
} from "./linux-process.ts";
import { runMarkEnv, sweepRun } from "./run-sweep.ts";
import { deriveUserName, ensureUser, ownChildUid, removeUser } from "./unix-user-account.ts";
import { checkRequestPaths, type HostTools, resolveHostTools } from "./unix-user-host.ts";

/** Options of the jail driver. */
export interface JailOptions {
  /** Run every jail as this existing unprivileged uid (give `gid` too) instead of a new system user per child. */
  readonly uid?: number;
  readonly gid?: number;
  /** Prefix of the per-child system users (default "enjail-"). */
  readonly userPrefix?: string;
  /** bubblewrap and bash (defaults /usr/bin/bwrap, /bin/bash); the account tools are found as unix-user finds them. */
  readonly tools?: { readonly bwrap?: string; readonly bash?: string };
  /** How long bwrap may take to set the jail up before start gives up (default 10 s). */
  readonly startTimeoutMs?: number;
  /** How often `wait` looks at a recovered jail (one this agent process did not start); default 200 ms. */
  readonly pollIntervalMs?: number;
  /** The clock for `startedMs` (default Date.now). */
  readonly nowMs?: () => number;
}

const positiveInt = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) > 0;

/** The jail driver factory: `jail({ ... })(services)` is a Driver. Bad options throw SupervisorConfigError. */
export function jail(opts: JailOptions = {}): DriverFactory {
  if ((opts.uid === undefined) !== (opts.gid === undefined))
    throw new SupervisorConfigError(
      "jail: give both uid and gid, or neither (then each child gets its own user)",
    );
  if (opts.uid !== undefined && (!positiveInt(opts.uid) || !positiveInt(opts.gid)))
    throw new SupervisorConfigError(
      "jail: uid and gid must be whole numbers above 0 (0 would make the jail host root)",
    );
  checkUserPrefix(opts.userPrefix ?? DEFAULT_JAIL_USER_PREFIX);
  const own = { bwrap: opts.tools?.bwrap ?? "/usr/bin/bwrap", bash: opts.tools?.bash ?? "/bin/bash" };
  for (const [name, path] of Object.entries(own))
    if (!isCleanAbsolutePath(path))
      throw new SupervisorConfigError(`jail: tool ${name} must be an absolute path`);
  for (const key of ["startTimeoutMs", "pollIntervalMs"] as const)
    if (opts[key] !== undefined && !positiveInt(opts[key]))
      throw new SupervisorConfigError(`jail: ${key} must be a whole number of milliseconds above 0`);
  return (services) => new JailDriver(opts, own, services);
}

class JailDriver implements Driver, LaunchSweeper {
  readonly name = "jail";
  #root: RootEntry[] | undefined;
  #host: HostTools | undefined;
  #bootId: string | undefined;
  /** Exits of the jails this driver object started, by `pid:startTicks` of their shim. */
  readonly #exits = new Map<string, Promise<ChildExit>>();

  constructor(
    private readonly opts: JailOptions,
    private readonly own: { readonly bwrap: string; readonly bash: string },
    private readonly services: DriverServices,
  ) {}

  async #view(roBinds: readonly string[], dir: string | null): Promise<JailMount[]> {
    this.#root ??= await probeRoot(SYSTEM_ROOT_PATHS);
    const { agentStateDir } = this.services;
    return jailView({ root: this.#root, optionalPaths: ETC_PATHS, roBinds, dir, agentStateDir });
  }

  #userPrefix(): string {
    return this.opts.userPrefix ?? DEFAULT_JAIL_USER_PREFIX;
  }

  async #alive(pid: number, startTicks: number, bootId: string): Promise<boolean> {
    this.#bootId ??= await readBootId();
    return startTicks >= 0 && bootId === this.#bootId && isSameProcessAlive(pid, startTicks);
  }

  async validate(spec: ChildSpec): Promise<void> {
    checkJailSpec(spec);
    const options = parseJailSpecOptions(spec);
    if (process.getuid?.() !== 0)
      throw new SupervisorConfigError("jail: the agent must run as root to drop each jail to its own user");
    await requireBinary(this.own.bwrap, "install bubblewrap (apt-get install bubblewrap)");
    await requireBinary(this.own.bash, "install bash");
    this.#host ??= await resolveHostTools();
    const mounts = await this.#view(options.roBinds, null);
    for (const path of options.roBinds)
      if ((await stat(path).catch(() => null)) === null)
        throw new InvalidSpecError(
          `child ${spec.name}: jail roBinds path ${path} does not exist on this host`,
        );
    const program = spec.command[0] as string;
    if (program.startsWith("./")) return; // in the child's own directory: checked by start
    const searchPath = spec.env?.PATH ?? DEFAULT_JAIL_PATH;
    const probe = hostFileProbe(this.opts.uid ?? -1, this.opts.gid ?? -1);
    if ((await resolveProgram(mounts, program, searchPath, probe)) === null)
      throw new MissingBinaryError(
        `child ${spec.name}: program ${program} is not an executable inside the jail (it shows /usr, /bin, /lib*, a few /etc files` +
          `${options.roBinds.length > 0 ? `, ${options.roBinds.join(", ")}` : ""}; PATH ${searchPath}); install it or add its directory to roBinds`,
      );
  }

  async start(request: StartRequest): Promise<ChildHandle> {
    const { spec } = request;
    await this.validate(spec);
    const dir = await checkRequestPaths(request, this.services.agentStateDir);
    const options = parseJailSpecOptions(spec);
    const mounts = await this.#view(options.roBinds, dir);
    const env = jailEnv(spec, request.port, dir);
    const given = spec.command[0] as string;
    const wanted = given.startsWith("./") ? posix.join(dir, given) : given;
    const user = this.opts.uid === undefined ? deriveUserName(this.#userPrefix(), spec.name) : null;
    const host = this.#host as HostTools;
    const account =
      user === null
        ? { uid: this.opts.uid as number, gid: this.opts.gid as number, created: false }
        : await ensureUser(user, spec.name, dir, host);
    try {
      const program = await resolveProgram(
        mounts,
        wanted,
        env.PATH ?? DEFAULT_JAIL_PATH,
        hostFileProbe(account.uid, account.gid),
      );
      if (program === null)
        throw new MissingBinaryError(
          `child ${spec.name}: program ${given} is not an executable inside the jail`,
        );
      await chown(dir, account.uid, account.gid);
      await chmod(dir, 0o700);
      const args = bwrapOptions({
        uid: account.uid,
        gid: account.gid,
        hostname: options.hostname,
        mounts,
        cwd: dir,
        env,
      });
      const command = [program, ...spec.command.slice(1)];
      return await this.#launch(request, dir, args, command, { ...account, user });
    } catch (e) {
      // A user made for a start that failed goes again (best effort: a jail being killed may still hold it).
      if (account.created && user !== null) await removeUser(user, spec.name, host).catch(() => {});
      throw e;
    }
  }

  async #launch(
    request: StartRequest,
    dir: string,
    bwrapArgs: readonly string[],
    command: readonly string[],
    ids: { readonly uid: number; readonly gid: number; readonly user: string | null },
  ): Promise<ChildHandle> {
    const { spec, logPath } = request;
    const host = this.#host as HostTools;
    const tools = {
      bash: this.own.bash,
      bwrap: this.own.bwrap,
      setpriv: host.setpriv,
      prlimit: host.prlimit,
    };
    const argv = shimArgv(tools, ids, spec.limits ?? {}, command);
    const log = openLog(logPath);
    let child: ChildProcess;
    let shimStartTicks: number;
    try {
      child = spawn(this.own.bash, argv, {
        cwd: "/",
        env: runMarkEnv(request.runId),
        detached: true,
        stdio: ["ignore", log.fd, log.fd, "pipe", "pipe", "pipe", "pipe"],
      });
      // Read before yielding: until the event loop reaps it, the shim's pid cannot be reused.
      const st =
        child.pid === undefined ? null : parseProcStat(readFileSync(`/proc/${child.pid}/stat`, "utf8"));
      if (st === null) throw new ChildStartError(`child ${spec.name}: ${this.own.bash} did not start`);
      shimStartTicks = st.startTicks;
    } finally {
      closeSync(log.fd);
    }
    const shimPid = child.pid as number;
    const shimExit = new Promise<ShimExit>((resolve) =>
      child.once("exit", (code, signal) => resolve({ code, signal })),
    );
    child.once("error", () => {});
    const pipes = [3, 4, 5, 6].map((fd) => child.stdio[fd]);
    for (const p of pipes) p?.on("error", () => {});
    const send = (fd: number, text: string) => (child.stdio[fd] as Writable | null)?.end(text);
    send(JAIL_FDS.args, encodeBwrapArgs(bwrapArgs));
    send(JAIL_FDS.passwd, jailPasswd(ids.user ?? `jail-${ids.uid}`, ids.uid, ids.gid, dir));
    send(JAIL_FDS.group, jailGroup(ids.user ?? `jail-${ids.gid}`, ids.gid));

    const status = child.stdio[JAIL_FDS.status] as Readable | null;
    const initPid = await readJailPid(status, shimExit, this.opts.startTimeoutMs ?? 10_000).catch(
      (e: Error) => {
        killQuietly(-shimPid, "SIGKILL");
        throw new ChildStartError(`child ${spec.name}: ${e.message}${logTail(logPath, log.sizeBytes)}`, {
          cause: e,
        });
      },
    );
    // Confirm ancestry (init -> outer bwrap -> shim) before trusting the pid: then record its start.
    const init = await readProcess(initPid);
    const outer = init === null ? null : await readProcess(init.ppid);
    const initStartTicks = init !== null && outer?.ppid === shimPid ? init.startTicks : -1;
    child.unref();
    for (const p of pipes) (p as { unref?: () => void } | null)?.unref?.();
    this.#bootId ??= await readBootId();
    const state: JailState = {
      shimStartTicks,
      bootId: this.#bootId,
      initPid,
      initStartTicks,
      uid: ids.uid,
      gid: ids.gid,
      user: ids.user,
      dir,
    };
    this.#exits.set(
      `${shimPid}:${shimStartTicks}`,
      shimExit.then(async ({ code, signal }) => {
        await this.#untilGone(state);
        return jailExit(code, signal);
      }),
    );
    const startedMs = (this.opts.nowMs ?? Date.now)();
    return {
      driver: "jail",
      name: spec.name,
      version: JAIL_HANDLE_VERSION,
      pid: shimPid,
      startedMs,
      state: { ...state },
    };
  }

  async wait(handle: ChildHandle): Promise<ChildExit> {
    const state = readJailState(handle);
    const key = `${handle.pid}:${state.shimStartTicks}`;
    let exit = this.#exits.get(key);
    if (exit === undefined) {
      exit = this.#pollExit(handle.pid, state);
      this.#exits.set(key, exit);
    }
    return exit;
  }

  /** For a jail this driver object did not start: poll /proc until the shim and the jail's pid 1 are gone. */
  async #pollExit(pid: number, state: JailState): Promise<ChildExit> {
    while (await this.#alive(pid, state.shimStartTicks, state.bootId))
      await sleep(this.opts.pollIntervalMs ?? 200);
    await this.#untilGone(state);
    const reason = "the jail ended while this agent process was not its parent; status unknown";
    return { code: null, signal: null, reason };
  }

  /** bwrap's outer process may exit a moment before the jail's pid 1 is gone: wait for that too. */
  async #untilGone(state: JailState): Promise<void> {
    while (await this.#alive(state.initPid, state.initStartTicks, state.bootId)) await sleep(10);
  }

  async stop(handle: ChildHandle, timeoutMs: number, signal: NodeJS.Signals = "SIGTERM"): Promise<ChildExit> {
    const state = readJailState(handle);
    const exit = this.wait(handle);
    const initAlive = () => this.#alive(state.initPid, state.initStartTicks, state.bootId);
    if (await initAlive()) killQuietly(-state.initPid, signal);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), timeoutMs);
    });
    const first = await Promise.race([exit, timedOut]);
    clearTimeout(timer);
    if (first !== null) return first;
    if (await initAlive()) killQuietly(state.initPid, "SIGKILL");
    if (await this.#alive(handle.pid, state.shimStartTicks, state.bootId))
      killQuietly(-handle.pid, "SIGKILL");
    return exit;
  }

  async recover(handle: ChildHandle): Promise<ChildHandle | null> {
    const state = readJailState(handle);
    return (await this.#alive(handle.pid, state.shimStartTicks, state.bootId)) ? handle : null;
  }

  async sweep(request: SweepRequest): Promise<number> {
    const { spec, runId } = request;
    if (this.opts.uid !== undefined) return sweepRun(runId); // a shared uid: only the marks say whose
    const uid = await ownChildUid(deriveUserName(this.#userPrefix(), spec.name), spec.name);
    return sweepRun(runId, async () => (uid === null ? [] : processesOfUid(uid)));
  }

  async cleanup(handle: ChildHandle): Promise<void> {
    const state = readJailState(handle);
    const running =
      (await this.#alive(handle.pid, state.shimStartTicks, state.bootId)) ||
      (await this.#alive(state.initPid, state.initStartTicks, state.bootId)) ||
      (state.user !== null && (await processesOfUid(state.uid)).length > 0);
    if (running)
      throw new ChildRunningError(
        `child ${handle.name}: the jail still runs (shim pid ${handle.pid}); stop it first`,
      );
    if (state.user !== null) {
      this.#host ??= await resolveHostTools();
      await removeUser(state.user, handle.name, this.#host);
    }
    await chown(state.dir, process.getuid?.() ?? 0, process.getgid?.() ?? 0).catch(
      (e: NodeJS.ErrnoException) => {
        if (e.code !== "ENOENT") throw e;
      },
    );
    this.#exits.delete(`${handle.pid}:${state.shimStartTicks}`);
  }
}
