/**
 * The pure half of the `unix-user` driver: checking a spec's shape, the child's replaced environment,
 * its rlimits, the shim's argument list, and the handle state layout. No I/O here.
 *
 * The shim is `/bin/sh` running SHIM_SCRIPT as root: it writes its own pid into each of the child's
 * cgroups, reports "attached" on fd 3 and waits for "go" (so the agent reads the process's start time
 * while it is certainly alive, and can still abort before any child code runs), then execs prlimit
 * (rlimits) → setpriv (the child's uid and gid, no capabilities, no_new_privs) → the command. The pid
 * never changes across those execs, so the child runs inside its cgroups from its first instruction.
 */
import type { ChildHandle, ChildLimits, ChildSpec } from "./driver.ts";
import { HandleStateError, InvalidSpecError } from "./errors.ts";

/** Handle state layout written by this version of the driver. */
export const UNIX_USER_STATE_VERSION = 1;
/** Registry name of the driver. */
export const UNIX_USER_DRIVER = "unix-user";
/** The child's PATH: fixed and free of anything the agent's own environment holds. */
export const SAFE_PATH = "/usr/local/bin:/usr/bin:/bin";
/** Child names, as the driver contract defines them. */
export const CHILD_NAME_PATTERN = /^[a-z0-9][a-z0-9-]{0,31}$/;
/** Variables the driver sets itself; a spec may not set them. */
export const RESERVED_ENV: readonly string[] = ["PORT", "HOME", "USER", "PATH"];
/** Highest RLIMIT_NOFILE the kernel accepts by default (fs.nr_open). */
export const MAX_OPEN_FILES = 1_048_576;

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

const fail = (what: string): never => {
  throw new InvalidSpecError(what);
};

const checkCount = (field: string, value: unknown, max: number) => {
  if (value === undefined) return;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1 || value > max) {
    fail(`limits.${field} must be a whole number from 1 to ${max}, got ${JSON.stringify(value)}`);
  }
};

/** Throw InvalidSpecError saying what is wrong with the shape of `spec` (name, command, env, limits, driver). */
export function checkSpecShape(spec: ChildSpec): void {
  if (typeof spec?.name !== "string" || !CHILD_NAME_PATTERN.test(spec.name)) {
    fail(`name must match ${CHILD_NAME_PATTERN.source}, got ${JSON.stringify(spec?.name)}`);
  }
  const cmd = spec.command;
  if (!Array.isArray(cmd) || cmd.length === 0 || cmd[0] === "") {
    fail(`command must be a non-empty list whose first element is the program, got ${JSON.stringify(cmd)}`);
  }
  cmd.forEach((arg, i) => {
    if (typeof arg !== "string" || arg.includes("\0"))
      fail(`command[${i}] must be a string without NUL bytes`);
  });
  for (const [key, value] of Object.entries(spec.env ?? {})) {
    if (!ENV_NAME.test(key)) fail(`env name ${JSON.stringify(key)} must match ${ENV_NAME.source}`);
    if (RESERVED_ENV.includes(key))
      fail(`env.${key} is set by the unix-user driver; remove it from the spec`);
    if (typeof value !== "string" || value.includes("\0"))
      fail(`env.${key} must be a string without NUL bytes`);
  }
  const limits: ChildLimits = spec.limits ?? {};
  checkCount("memoryBytes", limits.memoryBytes, Number.MAX_SAFE_INTEGER);
  checkCount("pids", limits.pids, 4_194_304);
  checkCount("cpuMillis", limits.cpuMillis, 1_000_000);
  checkCount("openFiles", limits.openFiles, MAX_OPEN_FILES);
  const driver = spec.driver ?? {};
  const extra = Object.keys(driver).filter((k) => k !== "adoptDescendants");
  if (extra.length > 0)
    fail(`the unix-user driver takes only driver.adoptDescendants; remove driver.${extra.join(", driver.")}`);
  if (driver.adoptDescendants !== undefined && typeof driver.adoptDescendants !== "boolean")
    fail(`driver.adoptDescendants must be true or false, got ${JSON.stringify(driver.adoptDescendants)}`);
}

/**
 * True when the spec says the child supervises children of its own (a ringd): on a restart,
 * processes it left in its cgroup — its own children, which outlive it on purpose so that it can
 * recover them — are kept, and the new process joins them, as long as every one runs as the child's
 * user. Without it a non-empty cgroup is refused (an app's leftovers would be duplicated).
 */
export function adoptsDescendants(spec: ChildSpec): boolean {
  return spec.driver?.adoptDescendants === true;
}

/** What the driver adds to the spec's env. */
export interface ChildEnvBase {
  readonly port: number;
  readonly home: string;
  readonly user: string;
  readonly path: string;
}

/** The child's whole environment: spec.env plus PORT, HOME, USER and PATH, nothing inherited. */
export function childEnv(spec: ChildSpec, base: ChildEnvBase): Record<string, string> {
  return { ...spec.env, PORT: String(base.port), HOME: base.home, USER: base.user, PATH: base.path };
}

/** The rlimits the child runs under. */
export interface ChildRlimits {
  readonly openFiles: number;
  /** RLIMIT_NPROC, or null for none. */
  readonly processes: number | null;
}

/**
 * Rlimits for `limits`. RLIMIT_NPROC counts the uid's processes, and the uid is the child's alone,
 * so it is the pid limit where the machine has no pids controller. Where it has one, the cgroup is
 * the limit that bites (and counts refusals in pids.events), and RLIMIT_NPROC stays one above it as a
 * backstop. RLIMIT_CORE is always 0 (no core dumps of a child's memory).
 */
export function childRlimits(
  limits: ChildLimits,
  opts: { readonly pidsController: boolean; readonly defaultOpenFiles: number },
): ChildRlimits {
  const pids = limits.pids;
  return {
    openFiles: limits.openFiles ?? opts.defaultOpenFiles,
    processes: pids === undefined ? null : opts.pidsController ? pids + 1 : pids,
  };
}

/**
 * The shim, run by /bin/sh as root. $1 is how many cgroup.procs files follow; then the files; then the
 * command to exec. Failures before the exec are written to fd 3 and end it with status 125.
 */
export const SHIM_SCRIPT = [
  'n="$1"; shift',
  'while [ "$n" -gt 0 ]; do echo "$$" 2>&3 >"$1" || exit 125; shift; n=$((n - 1)); done',
  "umask 077",
  "unset PWD OLDPWD",
  "echo attached >&3 || exit 125",
  'read -r go <&3 && [ "$go" = go ] || exit 125',
  'exec "$@" 3>&-',
].join("\n");

/** Everything the shim's argument list is made of. */
export interface ShimPlan {
  readonly procsFiles: readonly string[];
  readonly rlimits: ChildRlimits;
  readonly uid: number;
  readonly gid: number;
  readonly prlimit: string;
  readonly setpriv: string;
  readonly command: readonly string[];
}

/** Arguments for `/bin/sh`: `-c SHIM_SCRIPT`, then the shim's own $0..$N. */
export function shimArgs(plan: ShimPlan): string[] {
  const { openFiles, processes } = plan.rlimits;
  return [
    "-c",
    SHIM_SCRIPT,
    "enjin-shim",
    String(plan.procsFiles.length),
    ...plan.procsFiles,
    plan.prlimit,
    `--nofile=${openFiles}:${openFiles}`,
    ...(processes === null ? [] : [`--nproc=${processes}:${processes}`]),
    "--core=0:0",
    "--",
    plan.setpriv,
    `--reuid=${plan.uid}`,
    `--regid=${plan.gid}`,
    "--init-groups",
    "--inh-caps=-all",
    "--bounding-set=-all",
    "--no-new-privs",
    "--",
    ...plan.command,
  ];
}

/** The opaque state of a unix-user handle (version 1). */
export interface UnixUserState {
  readonly user: string;
  readonly uid: number;
  readonly gid: number;
  /** /proc/PID/stat field 22 of the child's top process: with the pid and the boot, names it uniquely. */
  readonly startTicks: number;
  /** The boot the child was started in (start times restart from zero at every boot). */
  readonly bootId: string;
  /** The child's directory (its home). */
  readonly dir: string;
  /** The child's cgroups (a CgroupPlacement, checked again by cgroup.ts on recover). */
  readonly cgroup: unknown;
}

const isWhole = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;

/** Read and check a handle's state; HandleStateError when it is not a version-1 unix-user handle. */
export function stateOf(handle: ChildHandle): UnixUserState {
  if (handle?.driver !== UNIX_USER_DRIVER) {
    throw new HandleStateError(
      `handle of driver ${JSON.stringify(handle?.driver)} given to ${UNIX_USER_DRIVER}`,
    );
  }
  if (handle.version !== UNIX_USER_STATE_VERSION) {
    throw new HandleStateError(
      `unix-user handle version ${handle.version} is not one this agent reads (it reads ${UNIX_USER_STATE_VERSION})`,
    );
  }
  const s = handle.state as Partial<UnixUserState>;
  const ok =
    typeof s?.user === "string" &&
    isWhole(s.uid) &&
    s.uid > 0 &&
    isWhole(s.gid) &&
    isWhole(s.startTicks) &&
    typeof s.bootId === "string" &&
    typeof s.dir === "string" &&
    isWhole(handle.pid) &&
    handle.pid > 0;
  if (!ok) throw new HandleStateError(`unix-user handle of ${handle.name} has malformed state`);
  return s as UnixUserState;
}
