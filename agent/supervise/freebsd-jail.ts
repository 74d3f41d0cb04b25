/**
 * The `jail` strategy's FreeBSD half, as data: a ChildSpec becomes jail(8) parameters, rendered as a
 * jail.conf(5) block that `jail -f FILE -c NAME` starts and `jail -f FILE -r NAME` removes, plus
 * rctl(8) rules for the limits. Pure and unit-tested here; it has not run on FreeBSD (this project's
 * machines are Linux), so the first real run belongs on a FreeBSD host.
 *
 * The same intent as the Linux driver: a read-only root (a shared base userland, nullfs-mounted
 * read-only), the child's own directory as the only writable host path (nullfs read-write at /app),
 * a private /tmp (tmpfs), its own hostname, its own SysV IPC namespace, the host's network kept
 * (ip4/ip6 "inherit") unless addresses are given, an unprivileged user (exec.jail_user), a clean
 * environment, securelevel 3, enforce_statfs 2, every allow.* off, no child jails, and `persist`
 * off so the jail is removed when its last process exits.
 *
 * The base directory must hold empty /app and /tmp directories to mount on.
 */
import type { ChildSpec } from "./driver.ts";
import { InvalidSpecError } from "./errors.ts";
import { checkJailSpec, DEFAULT_JAIL_PATH, parseJailSpecOptions } from "./jail-args.ts";
import { isCleanAbsolutePath } from "./jail-view.ts";
import { childSpec } from "./spec.ts";

/** Where the child's own directory appears inside a FreeBSD jail. */
export const FREEBSD_APP_DIR = "/app";
/** devfs ruleset 4 (devfsrules_jail in /etc/defaults/devfs.rules): the usual minimal /dev. */
export const FREEBSD_DEVFS_RULESET = 4;
/** securelevel 3: no raising of file flags, no changes to the firewall, no writes to raw disks. */
export const FREEBSD_SECURELEVEL = 3;
/** Every allow.* permission the driver switches off explicitly (most are off by default; two are not). */
export const FREEBSD_ALLOW_OFF: readonly string[] = [
  "allow.set_hostname",
  "allow.sysvipc",
  "allow.raw_sockets",
  "allow.chflags",
  "allow.mount",
  "allow.quotas",
  "allow.socket_af",
  "allow.mlock",
  "allow.reserved_ports",
  "allow.read_msgbuf",
  "allow.unprivileged_proc_debug",
];

/** A jail parameter's value: booleans render as "true"/"false", lists as one `+=` line per value. */
export type JailParamValue = string | number | boolean | readonly string[];
/** One jail(8) parameter, in the order it is written. */
export type JailParam = readonly [name: string, value: JailParamValue];

/** What the FreeBSD builder needs besides the spec. */
export interface FreeBsdJailInput {
  readonly spec: ChildSpec;
  readonly port: number;
  /** The child's directory on the host, mounted read-write at FREEBSD_APP_DIR. */
  readonly dir: string;
  /** Host file that receives the child's stdout and stderr (exec.consolelog). */
  readonly logPath: string;
  /** The shared read-only base userland (with empty /app and /tmp). */
  readonly basePath: string;
  /** Each jail's root is `jailsDir/<jail name>`, an empty directory the base is mounted on. */
  readonly jailsDir: string;
  /** The host user the child runs as inside (exec.jail_user, looked up in the host's passwd). */
  readonly user: string;
  /** "inherit" (default): the host's addresses, as on Linux; or the jail's own IPv4 addresses. */
  readonly ip4?: "inherit" | readonly string[];
  /** Seconds between SIGTERM and removal when the jail is stopped (stop.timeout, default 10). */
  readonly stopTimeoutSeconds?: number;
}

const USER_NAME = /^[a-z_][a-z0-9_-]{0,31}$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** The jail's name for a child: `enjin_` and the child's name with dashes as underscores (valid in rc.conf too). */
export function freebsdJailName(childName: string): string {
  return `enjin_${childName.replaceAll("-", "_")}`;
}

/** Quote one word for sh(1): single quotes, with each `'` written as `'\''`. */
export function shQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

function checkPath(path: string, what: string): string {
  if (!isCleanAbsolutePath(path) || path === "/" || /\s/.test(path))
    throw new InvalidSpecError(
      `${what} ${JSON.stringify(path)} must be a clean absolute path without whitespace`,
    );
  return path;
}

/**
 * The jail(8) parameters for one child, in jail.conf order. Throws InvalidSpecError saying what is
 * wrong. Every limit is accepted: FreeBSD enforces memory and CPU too, through rctlRules().
 */
export function freebsdJailParams(input: FreeBsdJailInput): JailParam[] {
  const { spec, port } = input;
  childSpec(spec);
  checkJailSpec({ ...spec, limits: {} }); // the Linux driver's limit refusals do not apply: rctl has them all
  const { roBinds, hostname } = parseJailSpecOptions(spec);
  if (roBinds.length > 0)
    throw new InvalidSpecError(
      `child ${spec.name}: roBinds are Linux-only; put what the child needs in the base`,
    );
  if (!Number.isSafeInteger(port) || port < 1 || port > 65535)
    throw new InvalidSpecError(`child ${spec.name}: port ${port} is not in 1..65535`);
  const dir = checkPath(input.dir, "the child's directory");
  const base = checkPath(input.basePath, "basePath");
  const jailsDir = checkPath(input.jailsDir, "jailsDir");
  const logPath = checkPath(input.logPath, "logPath");
  if (!USER_NAME.test(input.user) || input.user === "root")
    throw new InvalidSpecError(`user ${JSON.stringify(input.user)} must be an unprivileged user name`);
  const stopTimeout = input.stopTimeoutSeconds ?? 10;
  if (!Number.isSafeInteger(stopTimeout) || stopTimeout < 1)
    throw new InvalidSpecError("stopTimeoutSeconds must be a whole number of seconds above 0");
  const name = freebsdJailName(spec.name);
  const path = `${jailsDir}/${name}`;
  const ip4 = input.ip4 ?? "inherit";
  const network: JailParam[] =
    ip4 === "inherit"
      ? [
          ["ip4", "inherit"],
          ["ip6", "inherit"],
        ]
      : [
          ["ip4.addr", checkAddrs(ip4)],
          ["ip6", "disable"],
        ];
  const env = { PATH: DEFAULT_JAIL_PATH, HOME: FREEBSD_APP_DIR, ...(spec.env ?? {}), PORT: String(port) };
  const given = spec.command[0] as string;
  const program = given.startsWith("./") ? `${FREEBSD_APP_DIR}/${given.slice(2)}` : given;
  const start = [
    `cd ${FREEBSD_APP_DIR} && exec /usr/bin/env -i`,
    ...Object.entries(env).map(([k, v]) => shQuote(`${k}=${v}`)),
    ...[program, ...spec.command.slice(1)].map(shQuote),
  ].join(" ");
  return [
    ["path", path],
    ["host.hostname", hostname],
    ...network,
    ["persist", false],
    [
      "mount",
      [
        `${base} ${path} nullfs ro 0 0`,
        `${dir} ${path}${FREEBSD_APP_DIR} nullfs rw 0 0`,
        `tmpfs ${path}/tmp tmpfs rw 0 0`,
      ],
    ],
    ["mount.devfs", true],
    ["devfs_ruleset", FREEBSD_DEVFS_RULESET],
    ["securelevel", FREEBSD_SECURELEVEL],
    ["enforce_statfs", 2],
    ["children.max", 0],
    ...FREEBSD_ALLOW_OFF.map((p): JailParam => [p, false]),
    ["sysvmsg", "new"],
    ["sysvsem", "new"],
    ["sysvshm", "new"],
    ["exec.clean", true],
    ["exec.system_jail_user", true],
    ["exec.jail_user", input.user],
    ["exec.consolelog", logPath],
    ["exec.start", start],
    ["stop.timeout", stopTimeout],
  ];
}

function checkAddrs(addrs: readonly string[]): readonly string[] {
  if (addrs.length === 0 || !addrs.every((a) => IPV4.test(a)))
    throw new InvalidSpecError(
      `ip4 must be "inherit" or a non-empty list of IPv4 addresses, got ${JSON.stringify(addrs)}`,
    );
  return addrs;
}

/** Quote a value for jail.conf: double quotes, with `\`, `"` and `$` escaped (no variable expansion). */
export function confQuote(value: string): string {
  if ([...value].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f))
    throw new InvalidSpecError(`jail.conf value ${JSON.stringify(value)} holds a control character`);
  return `"${value.replace(/[\\"$]/g, (c) => `\\${c}`)}"`;
}

/** Render parameters as a jail.conf(5) block named `name`. */
export function jailConf(name: string, params: readonly JailParam[]): string {
  const lines = [`${name} {`];
  for (const [key, value] of params) {
    if (!Array.isArray(value)) lines.push(`\t${key} = ${confQuote(String(value))};`);
    else
      for (const [i, v] of value.entries()) lines.push(`\t${key} ${i === 0 ? "=" : "+="} ${confQuote(v)};`);
  }
  lines.push("}", "");
  return lines.join("\n");
}

/** argv that start and remove the jail described in the jail.conf file at `confPath`. */
export function jailCommands(confPath: string, name: string): { start: string[]; remove: string[] } {
  return {
    start: ["/usr/sbin/jail", "-f", confPath, "-c", name],
    remove: ["/usr/sbin/jail", "-f", confPath, "-r", name],
  };
}

/**
 * rctl(8) rules for the spec's limits (racct must be on: kern.racct.enable=1 in loader.conf).
 * `cpuMillis` becomes pcpu in percent of one CPU, rounded up.
 */
export function rctlRules(childName: string, spec: ChildSpec): string[] {
  const subject = `jail:${freebsdJailName(childName)}`;
  const { memoryBytes, pids, openFiles, cpuMillis } = spec.limits ?? {};
  const rules: string[] = [];
  if (memoryBytes !== undefined) rules.push(`${subject}:memoryuse:deny=${memoryBytes}`);
  if (pids !== undefined) rules.push(`${subject}:maxproc:deny=${pids}`);
  if (openFiles !== undefined) rules.push(`${subject}:openfiles:deny=${openFiles}`);
  if (cpuMillis !== undefined) rules.push(`${subject}:pcpu:deny=${Math.ceil(cpuMillis / 10)}`);
  return rules;
}
