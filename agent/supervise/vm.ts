/**
 * The `vm` strategy: each child is a qemu virtual machine booting the kernel and initramfs its spec
 * names (vm-args.ts), with the child's allocated host port forwarded to the guest's port by qemu's
 * user-mode network, its serial console and qemu's own messages appended to the child's log, and a
 * virtio-serial control channel back to the agent for readiness and health (vm-channel.ts).
 *
 * KVM is used when a probe shows it really runs a 64-bit guest (vm-kvm-probe.ts), with TCG as qemu's
 * fallback; otherwise TCG (software emulation) alone. qemu runs in its own session, so it outlives an
 * agent that restarts: `recover` finds it again by pid and start time and checks that its QMP monitor
 * answers. `stop` asks the guest to power off (QMP system_powerdown, the ACPI power button), then qemu
 * to quit (QMP quit), then sends the signal, then SIGKILL, sharing `timeoutMs` between the steps.
 * qemu's environment holds the run's mark (CHILD_RUN_ENV): when the agent died before it saved a
 * start's handle, `sweep` finds that qemu by it and kills it.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { constants as fsc } from "node:fs";
import { access, open, rm, stat } from "node:fs/promises";
import { availableParallelism, totalmem } from "node:os";
import { isAbsolute } from "node:path";
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
  SupervisorConfigError,
} from "./errors.ts";
import { runMarkEnv, sweepRun } from "./run-sweep.ts";
import {
  checkVmSpec,
  qemuArgs,
  VM_DRIVER,
  VM_STATE_VERSION,
  type VmAccel,
  type VmSpecPlan,
  vmPaths,
} from "./vm-args.ts";
import { GuestChannel } from "./vm-channel.ts";
import { BINARY_DIRS, findExecutable, logTail, settledWithin, signalQuietly, sleep } from "./vm-host.ts";
import { probeKvm } from "./vm-kvm-probe.ts";
import { qmpExecute } from "./vm-qmp.ts";
import {
  isSameProcess,
  processRssBytes,
  processStartTicks,
  readBootId,
  type VmState,
  vmStateOf,
} from "./vm-state.ts";

/** Options of `vm(opts)`. */
export interface VmOptions {
  /** The qemu binary: a name looked up in PATH or an absolute path (default qemu-system-x86_64). */
  readonly qemuBinary?: string;
  /** "auto" (default): KVM if the probe shows it works, else TCG; "kvm": KVM or refuse; "tcg": never KVM. */
  readonly accel?: "auto" | "kvm" | "tcg";
  /** Most RAM one guest may have, in bytes (default: this host's RAM). */
  readonly maxMemoryBytes?: number;
  /** Most vCPUs one guest may have (default: this host's CPU count). */
  readonly maxVcpus?: number;
  /** Host IPv4 address the forwarded port listens on (default 127.0.0.1). */
  readonly hostAddress?: string;
  /** How long qemu may take to open its QMP monitor after spawn, in ms (default 10,000). */
  readonly startTimeoutMs?: number;
  /** How long one QMP command may take, in ms (default 2,000). */
  readonly qmpTimeoutMs?: number;
  /** How often wait() looks at a VM this agent did not start (recovered), in ms (default 200). */
  readonly pollIntervalMs?: number;
  /** How long the KVM probe may take, in ms (default 2,000). */
  readonly kvmProbeTimeoutMs?: number;
}

/** Optional ability of the vm driver: readiness and health from inside the guest, over virtio-serial. */
export interface GuestChannelReporter {
  /** Resolves once the guest says `ready` (or answers a ping); GuestChannelError after `timeoutMs` or if the VM ends. */
  ready(handle: ChildHandle, timeoutMs: number): Promise<void>;
  /** One health question (`ping` -> `pong`); GuestChannelError on `fail ...`, silence or a dead VM. */
  ping(handle: ChildHandle, timeoutMs: number): Promise<void>;
}

/** The vm driver: a Driver that also reports usage, sweeps interrupted starts and talks to its guests. */
export type VmDriver = Driver &
  UsageReporter &
  LaunchSweeper &
  GuestChannelReporter & {
    /** The agent is going away: close the control channels and stop polling; the VMs go on running. */
    close(): void;
  };

const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;

const keyOf = (pid: number, startTicks: number) => `${pid}:${startTicks}`;

class Vm implements VmDriver {
  readonly name = VM_DRIVER;
  private readonly qemuName: string;
  private readonly hostAddress: string;
  private accelChoice: Promise<VmAccel> | undefined;
  /** Set by close(): polling of recovered VMs stops. */
  private closed = false;
  /** Exits of VMs keyed by "pid:startTicks" (started here, or polled after recover). */
  private readonly exits = new Map<string, Promise<ChildExit>>();
  private readonly channels = new Map<string, GuestChannel>();

  constructor(
    private readonly opts: VmOptions,
    private readonly services: DriverServices,
  ) {
    this.qemuName = opts.qemuBinary ?? "qemu-system-x86_64";
    this.hostAddress = opts.hostAddress ?? "127.0.0.1";
    if (!IPV4.test(this.hostAddress))
      throw new SupervisorConfigError(
        `vm hostAddress must be an IPv4 address, got ${JSON.stringify(this.hostAddress)}`,
      );
  }

  private async qemu(): Promise<string> {
    const path = await findExecutable(this.qemuName);
    if (path === null)
      throw new MissingBinaryError(
        `the vm driver needs ${this.qemuName}, which is not an executable file${this.qemuName.includes("/") ? "" : ` in ${BINARY_DIRS.join(":")}`}; apt-get install qemu-system-x86`,
      );
    return path;
  }

  /** How qemu accelerates, decided once per driver (the probe boots a tiny firmware under KVM). */
  private accel(qemu: string): Promise<VmAccel> {
    const mode = this.opts.accel ?? "auto";
    if (mode === "tcg") return Promise.resolve("tcg");
    this.accelChoice ??= probeKvm(qemu, this.opts.kvmProbeTimeoutMs).then((probe) => {
      if (probe.usable) return mode === "kvm" ? "kvm" : "kvm:tcg";
      if (mode === "kvm")
        throw new SupervisorConfigError(`vm accel "kvm" was asked for, but ${probe.detail}`);
      return "tcg";
    });
    return this.accelChoice;
  }

  private plan(spec: ChildSpec): VmSpecPlan {
    return checkVmSpec(spec, {
      maxMemoryBytes: this.opts.maxMemoryBytes ?? totalmem(),
      maxVcpus: this.opts.maxVcpus ?? availableParallelism(),
    });
  }

  async validate(spec: ChildSpec): Promise<void> {
    const { options } = this.plan(spec);
    await this.qemu();
    for (const key of ["kernel", "initrd", "firmware"] as const) {
      const path = options[key];
      if (path === undefined) continue;
      const st = await stat(path).catch(() => null);
      const readable =
        st?.isFile() === true &&
        (await access(path, fsc.R_OK).then(
          () => true,
          () => false,
        ));
      if (!readable)
        throw new InvalidSpecError(
          `vm child ${spec.name}: driver.${key} ${path} ${st === null ? "does not exist" : "is not a readable file"}; build or install the guest's ${key} first`,
        );
    }
  }

  /** Checks of the request's port and paths; throws InvalidSpecError, changes nothing. */
  private async checkRequest(req: StartRequest): Promise<void> {
    if (!Number.isSafeInteger(req.port) || req.port < 1 || req.port > 65_535)
      throw new InvalidSpecError(`port must be 1..65535, got ${req.port}`);
    if (!isAbsolute(req.dir) || !isAbsolute(req.logPath))
      throw new InvalidSpecError(`dir and logPath must be absolute paths (got ${req.dir}, ${req.logPath})`);
    if (!(await stat(req.dir).catch(() => null))?.isDirectory())
      throw new InvalidSpecError(`the child's directory ${req.dir} does not exist; create it first`);
    const stateDir = this.services.agentStateDir;
    if (req.dir === stateDir || req.dir.startsWith(`${stateDir}/`))
      throw new InvalidSpecError(
        `the child's directory ${req.dir} is inside the agent's state directory ${stateDir}`,
      );
  }

  async start(req: StartRequest): Promise<ChildHandle> {
    const { spec } = req;
    await this.validate(spec);
    await this.checkRequest(req);
    const plan = this.plan(spec);
    const paths = vmPaths(req.dir);
    const qemu = await this.qemu();
    const accel = await this.accel(qemu);
    await Promise.all(Object.values(paths).map((p) => rm(p, { force: true })));
    const args = qemuArgs({
      ...plan,
      accel,
      hostAddress: this.hostAddress,
      hostPort: req.port,
      paths,
      logPath: req.logPath,
    });
    const log = await open(req.logPath, fsc.O_WRONLY | fsc.O_APPEND | fsc.O_CREAT | fsc.O_NOFOLLOW, 0o600);
    let child: ChildProcess;
    try {
      child = spawn(qemu, args, {
        cwd: req.dir,
        env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", ...runMarkEnv(req.runId) },
        stdio: ["ignore", log.fd, log.fd],
        detached: true,
      });
    } finally {
      await log.close();
    }
    const exit = new Promise<ChildExit>((resolve) => {
      child.once("error", (err) =>
        resolve({ code: null, signal: null, reason: `spawn failed: ${err.message}` }),
      );
      child.once("exit", (code, signal) => resolve({ code, signal }));
    });
    let key: string | undefined;
    try {
      const pid = child.pid;
      const startTicks = pid === undefined ? null : await processStartTicks(pid);
      if (pid === undefined || startTicks === null)
        throw new Error(`qemu did not start: ${(await exit).reason ?? "it exited at once"}`);
      key = keyOf(pid, startTicks);
      this.exits.set(key, exit);
      await this.awaitMonitor(paths.qmpSocket, exit);
      const state: VmState = {
        startTicks,
        bootId: await readBootId(),
        dir: req.dir,
        ...paths,
        accel,
        machine: plan.options.machine,
        hostPort: req.port,
        guestPort: plan.options.guestPort,
      };
      return {
        driver: this.name,
        name: spec.name,
        version: VM_STATE_VERSION,
        pid,
        startedMs: Date.now(),
        state: { ...state },
      };
    } catch (err) {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      const ended = await exit;
      if (key !== undefined) this.exits.delete(key);
      await Promise.all(Object.values(paths).map((p) => rm(p, { force: true })));
      if (err instanceof SuperviseError) throw err;
      throw new ChildStartError(
        `could not start vm ${spec.name}: ${(err as Error).message} (qemu ended with code ${ended.code}, signal ${ended.signal}): ${await logTail(req.logPath)}`,
        { cause: err },
      );
    }
  }

  /** Wait until qemu's QMP monitor answers; throws if qemu exits first or takes too long. */
  private async awaitMonitor(qmpSocket: string, exit: Promise<ChildExit>): Promise<void> {
    let exited = false;
    void exit.then(() => {
      exited = true;
    });
    const deadline = Date.now() + (this.opts.startTimeoutMs ?? 10_000);
    for (;;) {
      try {
        await qmpExecute(qmpSocket, "query-status", this.opts.qmpTimeoutMs ?? 2_000);
        return;
      } catch (err) {
        if (exited) throw new Error("qemu exited before its monitor answered");
        if (Date.now() > deadline)
          throw new Error(`qemu's monitor did not answer: ${(err as Error).message}`);
        await sleep(20);
      }
    }
  }

  wait(handle: ChildHandle): Promise<ChildExit> {
    const s = vmStateOf(handle);
    const key = keyOf(handle.pid, s.startTicks);
    const known = this.exits.get(key);
    if (known) return known;
    const exit = (async (): Promise<ChildExit> => {
      while (await isSameProcess(handle.pid, s.startTicks, s.bootId)) {
        await sleep(this.opts.pollIntervalMs ?? 200);
        if (this.closed) await new Promise(() => {}); // the agent is going away: leave the VM be
      }
      return { code: null, signal: null, reason: "exited; its status went to the agent that started it" };
    })();
    this.exits.set(key, exit);
    return exit;
  }

  async stop(handle: ChildHandle, timeoutMs: number, signal: NodeJS.Signals = "SIGTERM"): Promise<ChildExit> {
    const s = vmStateOf(handle);
    const exit = this.wait(handle);
    this.channelOf(handle, s, false)?.close();
    this.channels.delete(keyOf(handle.pid, s.startTicks));
    const qmpMs = this.opts.qmpTimeoutMs ?? 2_000;
    const deadline = Date.now() + timeoutMs;
    const gone = async (untilMs: number) =>
      (await settledWithin(exit, untilMs - Date.now())) ||
      !(await isSameProcess(handle.pid, s.startTicks, s.bootId));
    const ask = (command: string) =>
      qmpExecute(s.qmpSocket, command, Math.min(qmpMs, Math.max(1, deadline - Date.now()))).catch(
        () => undefined,
      );
    const send = async (sig: NodeJS.Signals) => {
      if (await isSameProcess(handle.pid, s.startTicks, s.bootId)) signalQuietly(handle.pid, sig);
    };
    const steps: [() => Promise<unknown>, number][] = [
      [() => ask("system_powerdown"), 0.5],
      [() => ask("quit"), 0.75],
      [() => send(signal), 1],
    ];
    const startedMs = Date.now();
    for (const [step, share] of steps) {
      if (!(await isSameProcess(handle.pid, s.startTicks, s.bootId))) return exit;
      await step();
      if (await gone(startedMs + timeoutMs * share)) return exit;
    }
    await send("SIGKILL");
    return exit;
  }

  async recover(handle: ChildHandle): Promise<ChildHandle | null> {
    const s = vmStateOf(handle);
    if (!(await isSameProcess(handle.pid, s.startTicks, s.bootId))) return null;
    try {
      await qmpExecute(s.qmpSocket, "query-status", this.opts.qmpTimeoutMs ?? 2_000);
      return handle;
    } catch {
      // Ours by pid and start time but deaf: nothing can stop it cleanly or ask its guest anything.
      // Kill it rather than let the supervisor start a second copy beside it on the same port.
      if (await isSameProcess(handle.pid, s.startTicks, s.bootId)) signalQuietly(handle.pid, "SIGKILL");
      await this.wait(handle);
      return null;
    }
  }

  sweep(request: SweepRequest): Promise<number> {
    return sweepRun(request.runId);
  }

  async cleanup(handle: ChildHandle): Promise<void> {
    const s = vmStateOf(handle);
    if (await isSameProcess(handle.pid, s.startTicks, s.bootId))
      throw new ChildRunningError(
        `vm ${handle.name} (qemu pid ${handle.pid}) still runs; stop it before cleanup`,
      );
    const key = keyOf(handle.pid, s.startTicks);
    this.channels.get(key)?.close();
    this.channels.delete(key);
    this.exits.delete(key);
    await Promise.all([s.ctlSocket, s.qmpSocket, s.pidFile].map((p) => rm(p, { force: true })));
  }

  private channelOf(handle: ChildHandle, s: VmState, create = true): GuestChannel | undefined {
    const key = keyOf(handle.pid, s.startTicks);
    let channel = this.channels.get(key);
    if (!channel && create) {
      channel = new GuestChannel(s.ctlSocket, () => isSameProcess(handle.pid, s.startTicks, s.bootId));
      this.channels.set(key, channel);
    }
    return channel;
  }

  ready(handle: ChildHandle, timeoutMs: number): Promise<void> {
    const s = vmStateOf(handle);
    return (this.channelOf(handle, s) as GuestChannel).ready(timeoutMs);
  }

  ping(handle: ChildHandle, timeoutMs: number): Promise<void> {
    const s = vmStateOf(handle);
    return (this.channelOf(handle, s) as GuestChannel).ping(timeoutMs);
  }

  close(): void {
    this.closed = true;
    for (const channel of this.channels.values()) channel.close();
    this.channels.clear();
  }

  async usage(handle: ChildHandle): Promise<{ memoryBytes: number; pids: number }> {
    const s = vmStateOf(handle);
    const alive = await isSameProcess(handle.pid, s.startTicks, s.bootId);
    return { memoryBytes: alive ? await processRssBytes(handle.pid) : 0, pids: alive ? 1 : 0 };
  }
}

/**
 * The `vm` driver factory: `vm(opts)(services)` runs each child as a qemu VM booting the kernel and
 * initramfs its spec names, reachable on its allocated port (see the file comment). Needs
 * qemu-system-x86 (Debian) and, for speed, a working /dev/kvm.
 */
export function vm(opts: VmOptions = {}): (services: DriverServices) => VmDriver {
  return (services) => new Vm(opts, services);
}
