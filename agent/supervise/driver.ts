/**
 * The supervision driver contract: a driver (strategy) runs one child and nothing else. When to run
 * it again is the restart policy's business (restart-policy.ts); where its port comes from is the
 * port allocator's; the supervisor wires them together and saves handles in LevelDB.
 *
 * Modelled on Nomad's driver plugin: `start` returns a handle carrying versioned opaque state that the
 * supervisor persists, so an agent that restarts calls `recover(handle)` and gets the running child
 * back instead of orphaning it or starting a second copy. Drivers are built by lowercase factories
 * (`proc(opts)`, `unixUser(opts)`, `jail(opts)`, `vm(opts)`); registry.ts maps config names to them.
 */

/** A resource limit the child runs under. Every field is optional; absent means "not limited". */
export interface ChildLimits {
  /** Memory ceiling in bytes (cgroup memory.limit_in_bytes, or the VM's RAM). */
  readonly memoryBytes?: number;
  /** Most processes/threads the child may have (cgroup pids.max, or RLIMIT_NPROC). */
  readonly pids?: number;
  /** CPU share in thousandths of one core (1000 = one full core). */
  readonly cpuMillis?: number;
  /** Most open files (RLIMIT_NOFILE). */
  readonly openFiles?: number;
}

/** What to run. Drivers read only the fields they understand and refuse specs they cannot honour. */
export interface ChildSpec {
  /** Unique per node: [a-z0-9][a-z0-9-]{0,31}. Used for user names, cgroup and directory names. */
  readonly name: string;
  /** The program (absolute path, or a name looked up in PATH) and its arguments. */
  readonly command: readonly string[];
  /** Extra environment. The driver replaces the environment; it does not inherit the agent's. */
  readonly env?: Readonly<Record<string, string>>;
  /** Limits; a driver that cannot enforce one it was given refuses with UnenforceableLimitError. */
  readonly limits?: ChildLimits;
  /** Driver-specific settings (vm: kernel, initrd, memory; jail: extra binds ...), checked by the driver. */
  readonly driver?: Readonly<Record<string, unknown>>;
}

/** Everything the supervisor hands a driver for one start. */
export interface StartRequest {
  readonly spec: ChildSpec;
  /** The port allocated to this child; exported to it as PORT. */
  readonly port: number;
  /** The child's own directory (created by the supervisor, 0700); the only place it may write. */
  readonly dir: string;
  /** Open file descriptor or path where the child's stdout and stderr go (log capture). */
  readonly logPath: string;
  /**
   * This run's mark, saved by the supervisor before it calls `start`. The driver puts it, as
   * CHILD_RUN_ENV, into the environment of the host processes it starts, so that `sweep` can find
   * them if the agent dies before it saves the handle. Absent: the run carries no mark.
   */
  readonly runId?: string;
}

/** The environment variable naming a run (StartRequest.runId) in the processes a driver starts. */
export const CHILD_RUN_ENV = "ENJIN_CHILD_RUN";

/**
 * A running (or finished) child as the driver knows it. `state` is opaque to everyone but the
 * driver that made it, and `version` says which layout of `state` it is, so a newer agent can still
 * recover children an older one started. It must be JSON-encodable: the supervisor saves it.
 */
export interface ChildHandle {
  /** The driver's registry name ("proc", "unix-user", "jail", "vm"). */
  readonly driver: string;
  readonly name: string;
  readonly version: number;
  /** Host pid of the child's top process, for display and for the supervisor's own checks. */
  readonly pid: number;
  readonly startedMs: number;
  readonly state: Readonly<Record<string, unknown>>;
}

/** How a child ended. `code` null with a `signal` when it was killed. */
export interface ChildExit {
  readonly code: number | null;
  readonly signal: string | null;
  /** Set when the driver itself decided the child was gone (for instance its process vanished). */
  readonly reason?: string;
}

/** A driver: runs children of one kind. All methods are safe to call on a handle from `recover`. */
export interface Driver {
  readonly name: string;
  /** Check a spec without changing anything; throws a named error saying what is wrong. */
  validate(spec: ChildSpec): Promise<void>;
  /** Start the child. Resolves once the process exists (readiness is the health checks' job). */
  start(request: StartRequest): Promise<ChildHandle>;
  /** Resolves when the child exits, however that happens. May be called more than once. */
  wait(handle: ChildHandle): Promise<ChildExit>;
  /**
   * Stop the child: `signal` first, then SIGKILL after `timeoutMs`. Resolves when it is gone.
   * Idempotent: stopping a child that already exited resolves at once.
   */
  stop(handle: ChildHandle, timeoutMs: number, signal?: NodeJS.Signals): Promise<ChildExit>;
  /**
   * Reattach to a child started by an earlier agent process from its saved handle. Returns the
   * (possibly refreshed) handle if the child still runs, or null if it is gone; never starts one.
   */
  recover(handle: ChildHandle): Promise<ChildHandle | null>;
  /** Remove what the driver made for this child (user, cgroup, scratch files). Child must be stopped. */
  cleanup(handle: ChildHandle): Promise<void>;
}

/** Optional ability: the driver can report resource use of a running child. */
export interface UsageReporter {
  usage(handle: ChildHandle): Promise<{ readonly memoryBytes: number; readonly pids: number }>;
}

/** What `sweep` is told about a start that was interrupted: the child, and the mark of that run. */
export interface SweepRequest {
  readonly spec: ChildSpec;
  /** The child's directory, as the interrupted start was given it. */
  readonly dir: string;
  /** The interrupted run's StartRequest.runId. */
  readonly runId: string;
}

/**
 * Optional ability: end what a start left running when the agent died after `start` began and
 * before the supervisor saved its handle (so `recover` has nothing to find it by). Without it a
 * restarted agent could start a second copy beside an orphaned first one.
 */
export interface LaunchSweeper {
  /**
   * End (SIGKILL) every process the interrupted start of `request.runId` left behind, found by the
   * run's mark or by what the driver owns for this child alone; resolves, once they are gone, with
   * how many it ended (0 when the start had left nothing).
   */
  sweep(request: SweepRequest): Promise<number>;
}

/** True when `driver` has the LaunchSweeper ability. */
export function isLaunchSweeper(driver: Driver): driver is Driver & LaunchSweeper {
  return typeof (driver as Partial<LaunchSweeper>).sweep === "function";
}

/** Shared services a driver factory receives (no globals: many agents may live in one process). */
export interface DriverServices {
  /** The agent's own state directory; drivers must keep children out of it. */
  readonly agentStateDir: string;
}

/** Factories are lowercase functions returning this: `proc(opts)`, `unixUser(opts)` ... */
export type DriverFactory = (services: DriverServices) => Driver;
