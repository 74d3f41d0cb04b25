/**
 * The jail driver's pure half: checking a spec, naming the jail's user, and turning a spec plus a
 * view (jail-view.ts) into the exact command line that starts it. No I/O, so every choice here is
 * unit-tested.
 *
 * The process chain, outermost first (see jail.ts for why):
 *
 *   bash (shim, root, own session) ── closes inherited fds, waits, exits with the jail's status
 *     └ [prlimit] ── RLIMIT_NOFILE / RLIMIT_NPROC, only when the spec asks for them
 *        └ setpriv --reuid U --regid G --clear-groups --no-new-privs ── drops root before bwrap
 *           └ bwrap --args 3 -- PROGRAM ARGS ── unprivileged; its options arrive on fd 3, NUL-separated,
 *                                            so the child's environment is not in any host cmdline
 */
import { constants } from "node:os";
import type { ChildExit, ChildSpec } from "./driver.ts";
import { InvalidSpecError, SupervisorConfigError, UnenforceableLimitError } from "./errors.ts";
import { isCleanAbsolutePath, type JailMount } from "./jail-view.ts";
import { childSpec } from "./spec.ts";

/** File descriptors the shim hands down: bwrap's options, its JSON status, the jail's passwd and group. */
export const JAIL_FDS = { args: 3, status: 4, passwd: 5, group: 6 } as const;
/** Highest fd the shim keeps open; everything above it that the agent leaked is closed before bwrap. */
export const JAIL_LAST_FD = 6;
/** PATH inside the jail unless the spec sets one. */
export const DEFAULT_JAIL_PATH = "/usr/local/bin:/usr/bin:/bin";
/** Default prefix of the per-child system users the driver creates. */
export const DEFAULT_JAIL_USER_PREFIX = "enjail-";
/** Processes the jail itself runs as the jail's user besides the child: the outer bwrap and its pid-1 init. */
export const JAIL_OWN_PROCESSES = 2;

const USER_PREFIX = /^[a-z_][a-z0-9_-]{0,15}$/;
const HOSTNAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
/** Set by the driver; a spec may not set it. */
const RESERVED_ENV = ["PORT"];

/** The jail-specific settings a spec may carry in `spec.driver`. */
export interface JailSpecOptions {
  /** Extra host paths shown read-only at the same path inside (a tools directory, a shared dataset). */
  readonly roBinds: readonly string[];
  /** The jail's hostname; the child's name when absent. */
  readonly hostname: string;
}

/** Read `spec.driver` for the jail. Unknown keys and wrong types are refused with InvalidSpecError. */
export function parseJailSpecOptions(spec: ChildSpec): JailSpecOptions {
  const raw = spec.driver ?? {};
  for (const key of Object.keys(raw))
    if (key !== "roBinds" && key !== "hostname")
      throw new InvalidSpecError(
        `jail: unknown driver option ${JSON.stringify(key)} (known: roBinds, hostname)`,
      );
  const roBinds = raw.roBinds ?? [];
  if (!Array.isArray(roBinds) || !roBinds.every((p): p is string => typeof p === "string"))
    throw new InvalidSpecError("jail: driver option roBinds must be an array of absolute paths");
  const hostname = raw.hostname ?? spec.name;
  if (typeof hostname !== "string" || !HOSTNAME.test(hostname))
    throw new InvalidSpecError(
      `jail: hostname ${JSON.stringify(hostname)} must be one DNS label: a-z, 0-9 and inner dashes, at most 63`,
    );
  return { roBinds, hostname };
}

/**
 * Check a spec for the jail: the fields every strategy shares (spec.ts), then what is the jail's own —
 * the program's form, PORT left to the supervisor, and limits it can enforce (rlimits; memory and
 * CPU would need cgroups, which it does not set: UnenforceableLimitError). Returns nothing on success.
 */
export function checkJailSpec(spec: ChildSpec): void {
  childSpec(spec);
  const program = spec.command[0] as string;
  if (program.startsWith("/") && !isCleanAbsolutePath(program))
    throw new InvalidSpecError(`child ${spec.name}: program path ${program} is not in normal form`);
  if (!program.startsWith("/") && program.includes("/") && !program.startsWith("./"))
    throw new InvalidSpecError(
      `child ${spec.name}: program ${program} must be absolute, a bare name found in PATH, or ./name in the child's directory`,
    );
  for (const key of RESERVED_ENV)
    if (spec.env?.[key] !== undefined)
      throw new InvalidSpecError(`child ${spec.name}: ${key} is set by the supervisor; remove it from env`);
  const limits = spec.limits ?? {};
  if (limits.memoryBytes !== undefined || limits.cpuMillis !== undefined)
    throw new UnenforceableLimitError(
      `child ${spec.name}: the jail driver does not set cgroup limits (memoryBytes, cpuMillis); drop them or use the unix-user driver`,
    );
}

/** Check a user-name prefix for per-child jail users. Throws SupervisorConfigError. */
export function checkUserPrefix(prefix: string): void {
  if (!USER_PREFIX.test(prefix))
    throw new SupervisorConfigError(
      `jail: userPrefix ${JSON.stringify(prefix)} must match [a-z_][a-z0-9_-]{0,15} (it starts every jail user's name)`,
    );
}

/** The child's whole environment: PATH and HOME (overridable), the spec's env, then PORT. */
export function jailEnv(spec: ChildSpec, port: number, dir: string): Record<string, string> {
  return { PATH: DEFAULT_JAIL_PATH, HOME: dir, ...(spec.env ?? {}), PORT: String(port) };
}

/** The jail's own /etc/passwd: its user, and nobody for the ids the user namespace does not map. */
export function jailPasswd(user: string, uid: number, gid: number, home: string): string {
  return `${user}:x:${uid}:${gid}:${user}:${home}:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n`;
}

/** The jail's own /etc/group. */
export function jailGroup(user: string, gid: number): string {
  return `${user}:x:${gid}:\nnogroup:x:65534:\n`;
}

/** Everything bwrap's options depend on. */
export interface BwrapInput {
  readonly uid: number;
  readonly gid: number;
  readonly hostname: string;
  /** From jailView(). */
  readonly mounts: readonly JailMount[];
  /** The working directory inside (the child's own directory). */
  readonly cwd: string;
  readonly env: Readonly<Record<string, string>>;
}

/**
 * bwrap's options (everything before `--`), to be sent NUL-separated on fd JAIL_FDS.args. New user,
 * pid, ipc and uts namespaces (a mount namespace is implied); the host network is kept so the child
 * answers on PORT. The root is made read-only last, so only the child's directory and /tmp are writable.
 */
export function bwrapOptions(input: BwrapInput): string[] {
  const { uid, gid, hostname, mounts, cwd, env } = input;
  const args = [
    "--unshare-user",
    "--uid",
    String(uid),
    "--gid",
    String(gid),
    "--disable-userns",
    "--unshare-pid",
    "--unshare-ipc",
    "--unshare-uts",
    "--hostname",
    hostname,
    "--die-with-parent",
    "--new-session",
  ];
  for (const m of mounts) {
    if (m.kind === "symlink") args.push("--symlink", m.target, m.dest);
    else if ("src" in m) args.push(`--${m.kind}`, m.src, m.dest);
    else args.push(`--${m.kind}`, m.dest);
  }
  args.push(
    "--ro-bind-data",
    String(JAIL_FDS.passwd),
    "/etc/passwd",
    "--ro-bind-data",
    String(JAIL_FDS.group),
    "/etc/group",
    "--remount-ro",
    "/",
    "--chdir",
    cwd,
    "--clearenv",
  );
  for (const [key, value] of Object.entries(env)) args.push("--setenv", key, value);
  args.push("--json-status-fd", String(JAIL_FDS.status));
  return args;
}

/** NUL-terminate each argument, the format of bwrap's `--args FD`. */
export function encodeBwrapArgs(args: readonly string[]): string {
  return args.map((a) => `${a}\0`).join("");
}

/** Absolute paths of the host tools the chain runs. */
export interface JailTools {
  readonly bash: string;
  readonly setpriv: string;
  readonly bwrap: string;
  readonly prlimit: string;
}

/**
 * The shim script: close every inherited fd above JAIL_LAST_FD (the agent's own descriptors must
 * not reach the jail), run the chain, and exit with its status (`exit $?` also keeps bash from
 * replacing itself with the chain, so the shim stays the jail's parent).
 */
export const SHIM_SCRIPT = `for p in /proc/self/fd/*; do f=\${p##*/}; if [ "$f" -gt ${JAIL_LAST_FD} ] && [ -e "$p" ]; then exec {f}>&-; fi; done; "$@"; exit $?`;

/** argv[0] of the shim, so `ps` shows what it is. */
export const SHIM_NAME = "enjin-jail-shim";

/**
 * The full argv after the shell's path: `-c SHIM_SCRIPT enjin-jail-shim [prlimit ...] setpriv ... bwrap --args 3 -- program args`.
 * RLIMIT_NPROC counts every process of the jail's user, so it is raised by JAIL_OWN_PROCESSES for bwrap's two.
 */
export function shimArgv(
  tools: JailTools,
  ids: { readonly uid: number; readonly gid: number },
  limits: { readonly pids?: number; readonly openFiles?: number },
  command: readonly string[],
): string[] {
  const argv = ["-c", SHIM_SCRIPT, SHIM_NAME];
  if (limits.pids !== undefined || limits.openFiles !== undefined) {
    argv.push(tools.prlimit);
    if (limits.openFiles !== undefined) argv.push(`--nofile=${limits.openFiles}:${limits.openFiles}`);
    if (limits.pids !== undefined) {
      const nproc = limits.pids + JAIL_OWN_PROCESSES;
      argv.push(`--nproc=${nproc}:${nproc}`);
    }
    argv.push("--");
  }
  argv.push(
    tools.setpriv,
    "--reuid",
    String(ids.uid),
    "--regid",
    String(ids.gid),
    "--clear-groups",
    "--no-new-privs",
    "--",
    tools.bwrap,
    "--args",
    String(JAIL_FDS.args),
    "--",
    ...command,
  );
  return argv;
}

/**
 * How a jail ended, from the shim's exit. bwrap (and so the shim) reports a child killed by signal N
 * as exit status 128 + N, the shell convention; that is mapped back to the signal's name, so a
 * program that itself exits with 129..192 is reported as killed (the status cannot tell them apart).
 */
export function jailExit(code: number | null, signal: NodeJS.Signals | null): ChildExit {
  if (signal !== null) return { code: null, signal, reason: "the jail's shim was killed" };
  if (code !== null && code > 128 && code <= 128 + 64) {
    const number = code - 128;
    const name = Object.entries(constants.signals).find(([, n]) => n === number)?.[0];
    if (name !== undefined)
      return { code: null, signal: name, reason: `bwrap reported status ${code} (128 + ${name})` };
  }
  return { code, signal: null };
}
