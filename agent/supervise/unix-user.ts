/**
 * The `unix-user` strategy: each child runs as a system user of its own (created by the agent on the
 * first start, reused on restarts, removed by cleanup), with its directory as its home (0700, its
 * own), a replaced environment, rlimits, no capabilities and no_new_privs, and in cgroups that limit
 * memory, pids and cpu where the machine has those controllers. The child is placed in its cgroups by
 * a shim before it runs any code (unix-user-spec.ts, unix-user-launch.ts); its stdout and stderr are a
 * root-owned log file opened O_APPEND by the agent and handed over as a descriptor, so the child can
 * write its log but open nothing of the agent's. stop() and cleanup() kill everything left in the
 * cgroups and everything running as the uid, so a double-forked grandchild does not outlive its child.
 * The shim and the child carry their run's mark (CHILD_RUN_ENV); when the agent died before it saved
 * a start's handle, `sweep` ends the marked processes and, unless the child adopts descendants (whose
 * earlier runs' children are kept), everything of its uid and cgroups.
 */
import { chmod, chown, stat } from "node:fs/promises";
import {
  type CgroupPlacement,
  cgroupEvents,
  cgroupPids,
  cgroupPlacement,
  cgroupUsage,
  createCgroup,
  killCgroup,
  placementFromState,
  procsFiles,
  removeCgroup,
} from "./cgroup.ts";
import { type CgroupLayout, checkEnforceable, detectCgroups, hasController } from "./cgroup-layout.ts";
import type {
  ChildExit,
  ChildHandle,
  ChildSpec,
  Driver,
  DriverServices,
  LaunchSweeper,
  StartRequest,
  SweepRequest,
  UsageReporter,
} from "./driver.ts";
import {
  ChildRunningError,
  ChildStartError,
  InvalidSpecError,
  MissingBinaryError,
  SuperviseError,
} from "./errors.ts";
import { isSameProcessAlive, processesOfUid, readBootId, readProcessUid, rssBytes } from "./linux-process.ts";
import { runMarkEnv, sweepRun } from "./run-sweep.ts";
import {
  checkAccountOurs,
  chownTree,
  deleteFilesOfUid,
  deriveUserName,
  ensureUser,
  findAccount,
  killUidProcesses,
  ownChildUid,
  removeUser,
} from "./unix-user-account.ts";
import { checkRequestPaths, findExecutable, type HostTools, resolveHostTools } from "./unix-user-host.ts";
import { launchChild } from "./unix-user-launch.ts";
import {
  adoptsDescendants,
  checkSpecShape,
  childEnv,
  childRlimits,
  SAFE_PATH,
  shimArgs,
  stateOf,
  UNIX_USER_DRIVER,
  UNIX_USER_STATE_VERSION,
  type UnixUserState,
} from "./unix-user-spec.ts";

/** Options of `unixUser(opts)`. */
export interface UnixUserOptions {
  /** Prefix of every child's user, group and cgroup name: [a-z][a-z0-9-]{0,15} (default "enjin-"). */
  readonly userPrefix?: string;
  /** Group below each cgroup hierarchy's root holding the children's groups (default "enjin"). */
  readonly cgroupParent?: string;
  /** RLIMIT_NOFILE when a spec sets no limits.openFiles (default 4096). */
  readonly defaultOpenFiles?: number;
  /** How often wait() looks at a child this agent did not start itself (recovered), in ms (default 200). */
  readonly pollIntervalMs?: number;
  /** The child's PATH (default SAFE_PATH). */
  readonly path?: string;
  /** The mount table cgroup controllers are found in (default /proc/self/mounts). */
  readonly mountsPath?: string;
  /** Shared scratch directories cleanup() clears of the child's files (default /tmp, /var/tmp, /dev/shm). */
  readonly scratchDirs?: readonly string[];
  /** How long stop() and cleanup() go on killing a group that refills before giving up, in ms (default 10,000). */
  readonly killTimeoutMs?: number;
}

/** The unix-user driver: a Driver that also reports usage and sweeps interrupted starts. */
export type UnixUserDriver = Driver & UsageReporter & LaunchSweeper;

const PREFIX_PATTERN = /^[a-z][a-z0-9-]{0,15}$/;
const DEFAULT_SCRATCH_DIRS = ["/tmp", "/var/tmp", "/dev/shm"];

const isErrno = (err: unknown, code: string) => (err as NodeJS.ErrnoException | null)?.code === code;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

class UnixUser implements UnixUserDriver {
  readonly name = UNIX_USER_DRIVER;
  private readonly prefix: string;
  private readonly cgroupParent: string;
  private readonly path: string;
  private readonly killTimeoutMs: number;
  private layout: Promise<CgroupLayout> | undefined;
  private tools: Promise<HostTools> | undefined;
  /** Exits of children keyed by "pid:startTicks": started here, or being polled after recover. */
  private readonly exits = new Map<string, Promise<ChildExit>>();
  /** Account changes (useradd, userdel, chown) one at a time. */
  private accountChain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly opts: UnixUserOptions,
    private readonly services: DriverServices,
  ) {
    this.prefix = opts.userPrefix ?? "enjin-";
    this.cgroupParent = opts.cgroupParent ?? "enjin";
    this.path = opts.path ?? SAFE_PATH;
    this.killTimeoutMs = opts.killTimeoutMs ?? 10_000;
    if (!PREFIX_PATTERN.test(this.prefix)) {
      throw new InvalidSpecError(
        `unix-user userPrefix must match ${PREFIX_PATTERN.source}, got "${this.prefix}"`,
      );
    }
  }

  private cgroups(): Promise<CgroupLayout> {
    this.layout ??= detectCgroups(this.opts.mountsPath);
    return this.layout;
  }

  private hostTools(): Promise<HostTools> {
    if (!this.tools) {
      this.tools = resolveHostTools();
      // A failed lookup is not kept: installing the tool and trying again must work.
      this.tools.catch(() => {
        this.tools = undefined;
      });
    }
    return this.tools;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.accountChain.then(fn, fn);
    this.accountChain = next.catch(() => {});
    return next;
  }

  async validate(spec: ChildSpec): Promise<void> {
    checkSpecShape(spec);
    await this.hostTools();
    const program = spec.command[0]!;
    if ((await findExecutable(program, this.path.split(":"))) === null) {
      const where = program.includes("/") ? "" : ` in the child's PATH (${this.path})`;
      throw new MissingBinaryError(
        `program "${program}" of child ${spec.name} is not an executable file${where}; install it or fix the command`,
      );
    }
    const layout = await this.cgroups();
    // Without a pids controller the pid limit is RLIMIT_NPROC alone (the uid is the child's own).
    checkEnforceable(layout, this.cgroupLimits(spec, layout));
    const user = deriveUserName(this.prefix, spec.name);
    checkAccountOurs(user, spec.name, await findAccount(user));
  }

  private cgroupLimits(spec: ChildSpec, layout: CgroupLayout) {
    const { memoryBytes, cpuMillis, pids } = spec.limits ?? {};
    return { memoryBytes, cpuMillis, pids: hasController(layout, "pids") ? pids : undefined };
  }

  async start(req: StartRequest): Promise<ChildHandle> {
    const { spec } = req;
    await this.validate(spec);
    const dir = await checkRequestPaths(req, this.services.agentStateDir);
    const tools = await this.hostTools();
    const layout = await this.cgroups();
    const user = deriveUserName(this.prefix, spec.name);
    const account = await this.serial(async () => {
      const made = await ensureUser(user, spec.name, dir, tools);
      if (made.created) await chownTree(dir, made.uid, made.gid, tools);
      return made;
    });
    let placement: CgroupPlacement | undefined;
    let adopted = false;
    try {
      await chown(dir, account.uid, account.gid);
      await chmod(dir, 0o700);
      placement = await createCgroup(
        layout,
        `${this.cgroupParent}/${user}`,
        this.cgroupLimits(spec, layout),
        adoptsDescendants(spec) ? { adoptUid: account.uid } : {},
      );
      // Kept with what runs in it: a failed start must not take the adopted children down with it.
      adopted = adoptsDescendants(spec) && (await cgroupPids(placement)).length > 0;
      const rlimits = childRlimits(spec.limits ?? {}, {
        pidsController: hasController(layout, "pids"),
        defaultOpenFiles: this.opts.defaultOpenFiles ?? 4096,
      });
      const launched = await launchChild({
        sh: tools.sh,
        args: shimArgs({
          procsFiles: procsFiles(placement),
          rlimits,
          uid: account.uid,
          gid: account.gid,
          prlimit: tools.prlimit,
          setpriv: tools.setpriv,
          command: spec.command,
        }),
        env: {
          ...childEnv(spec, { port: req.port, home: dir, user, path: this.path }),
          ...runMarkEnv(req.runId),
        },
        cwd: dir,
        logPath: req.logPath,
        placement,
      });
      this.exits.set(`${launched.pid}:${launched.startTicks}`, launched.exit);
      const state: UnixUserState = {
        user,
        uid: account.uid,
        gid: account.gid,
        startTicks: launched.startTicks,
        bootId: await readBootId(),
        dir,
        cgroup: placement,
      };
      return {
        driver: this.name,
        name: spec.name,
        version: UNIX_USER_STATE_VERSION,
        pid: launched.pid,
        startedMs: Date.now(),
        state: { ...state },
      };
    } catch (err) {
      if (placement && !adopted) await removeCgroup(placement, this.killTimeoutMs).catch(() => {});
      if (account.created) {
        await this.serial(async () => {
          await killUidProcesses(account.uid, account.gid, tools);
          await chownTree(dir, 0, 0, tools);
          await removeUser(user, spec.name, tools);
        }).catch(() => {});
      }
      if (err instanceof SuperviseError) throw err;
      throw new ChildStartError(`could not start ${spec.name}: ${(err as Error).message}`, { cause: err });
    }
  }

  wait(handle: ChildHandle): Promise<ChildExit> {
    const s = stateOf(handle);
    const key = `${handle.pid}:${s.startTicks}`;
    const known = this.exits.get(key);
    if (known) return known;
    // Not started by this agent process (recovered): its status went to its parent; poll /proc.
    const exit = (async (): Promise<ChildExit> => {
      const pollMs = this.opts.pollIntervalMs ?? 200;
      while (await isSameProcessAlive(handle.pid, s.startTicks)) await sleep(pollMs);
      const ev = await cgroupEvents(await this.placementOf(s)).catch(() => null);
      const oom = ev !== null && ev.oomKills > 0 ? "; the kernel OOM-killed a process of its cgroup" : "";
      return {
        code: null,
        signal: null,
        reason: `exited; its status went to the agent that started it${oom}`,
      };
    })();
    this.exits.set(key, exit);
    return exit;
  }

  private async placementOf(s: UnixUserState): Promise<CgroupPlacement> {
    return placementFromState(s.cgroup, await this.cgroups());
  }

  /** Kill whatever is left of the child: everything running as its uid, then whatever is in its cgroups. */
  private async killLeftovers(s: UnixUserState): Promise<void> {
    const tools = await this.hostTools();
    if ((await findAccount(s.user)).user?.uid === s.uid) await killUidProcesses(s.uid, s.gid, tools);
    await killCgroup(await this.placementOf(s), this.killTimeoutMs);
  }

  async sweep(request: SweepRequest): Promise<number> {
    const { spec, runId } = request;
    const user = deriveUserName(this.prefix, spec.name);
    const uid = adoptsDescendants(spec) ? null : await ownChildUid(user, spec.name);
    if (uid === null) return sweepRun(runId, undefined, this.killTimeoutMs);
    const placement = cgroupPlacement(await this.cgroups(), `${this.cgroupParent}/${user}`);
    const owned = async () => [...(await processesOfUid(uid)), ...(await cgroupPids(placement))];
    return sweepRun(runId, owned, this.killTimeoutMs);
  }

  async stop(handle: ChildHandle, timeoutMs: number, signal: NodeJS.Signals = "SIGTERM"): Promise<ChildExit> {
    const s = stateOf(handle);
    const exit = this.wait(handle);
    const signalTop = (sig: NodeJS.Signals) => {
      // Its process group first (pgid = pid: the shim made a session of its own), then itself in case
      // it left the group.
      for (const target of [-handle.pid, handle.pid]) {
        try {
          process.kill(target, sig);
        } catch (err) {
          if (!isErrno(err, "ESRCH")) throw err;
        }
      }
    };
    if (await isSameProcessAlive(handle.pid, s.startTicks)) {
      signalTop(signal);
      const timedOut = Symbol("timeout");
      const first = await Promise.race([exit, sleep(timeoutMs).then(() => timedOut)]);
      if (first === timedOut && (await isSameProcessAlive(handle.pid, s.startTicks))) signalTop("SIGKILL");
    }
    await this.killLeftovers(s);
    return exit;
  }

  async recover(handle: ChildHandle): Promise<ChildHandle | null> {
    const s = stateOf(handle);
    const placement = await this.placementOf(s); // a handle naming cgroups this machine lacks is refused
    if (s.bootId !== (await readBootId())) return null; // rebooted: the child is gone, its pid means nothing
    if (!(await isSameProcessAlive(handle.pid, s.startTicks))) return null;
    // pid + start time + boot name one process; that it sits in the child's cgroups (which the shim
    // joined before start() returned, and which the child cannot leave) or runs as its uid confirms it.
    const member =
      placement.nodes.length > 0
        ? (await cgroupPids(placement)).includes(handle.pid)
        : (await readProcessUid(handle.pid)) === s.uid;
    return member ? handle : null;
  }

  async cleanup(handle: ChildHandle): Promise<void> {
    const s = stateOf(handle);
    if (await isSameProcessAlive(handle.pid, s.startTicks)) {
      throw new ChildRunningError(
        `child ${handle.name} (pid ${handle.pid}) still runs; stop it before cleanup`,
      );
    }
    const tools = await this.hostTools();
    const placement = await this.placementOf(s);
    await this.serial(async () => {
      await this.killLeftovers(s);
      if ((await findAccount(s.user)).user?.uid === s.uid) {
        // Take back what the uid owned before the uid can be handed to another account.
        if ((await stat(s.dir).catch(() => null))?.isDirectory()) await chownTree(s.dir, 0, 0, tools);
        await deleteFilesOfUid(s.uid, this.opts.scratchDirs ?? DEFAULT_SCRATCH_DIRS, tools);
      }
      await removeCgroup(placement, this.killTimeoutMs);
      await removeUser(s.user, handle.name, tools);
    });
    this.exits.delete(`${handle.pid}:${s.startTicks}`);
  }

  async usage(handle: ChildHandle): Promise<{ memoryBytes: number; pids: number }> {
    const s = stateOf(handle);
    const placement = await this.placementOf(s);
    const fromCgroup = await cgroupUsage(placement);
    const members = placement.nodes.length > 0 ? await cgroupPids(placement) : await processesOfUid(s.uid);
    return {
      memoryBytes: fromCgroup.memoryBytes ?? (await rssBytes(members)),
      pids: fromCgroup.pids ?? members.length,
    };
  }
}

/**
 * The `unix-user` driver factory: `unixUser(opts)(services)` runs each child as its own system user
 * under rlimits and cgroup limits (see the file comment). It needs root.
 */
export function unixUser(opts: UnixUserOptions = {}): (services: DriverServices) => UnixUserDriver {
  return (services) => new UnixUser(opts, services);
}
