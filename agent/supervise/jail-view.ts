/**
 * What a jailed child sees of the host's files: an ordered list of mounts (pure, no I/O), and the
 * lookup of a program through that list. The jail's root is an empty tmpfs made read-only at the
 * end; on it go the host's system directories read-only (/usr and the /bin, /lib ... directories or
 * merged-/usr symlinks), a chosen few files of /etc, a new /proc and /dev, a private /tmp, the spec's
 * extra read-only binds, and last the child's own directory read-write. Nothing else of the host
 * exists inside; the agent's state directory, if some bind would show it, is covered by an empty tmpfs.
 *
 * Order matters as it does for mount(2): a later mount on a path hides what earlier ones put there.
 */
import { posix } from "node:path";
import { InvalidSpecError, SupervisorConfigError } from "./errors.ts";

/** One top-level entry of the host's root that the jail mirrors. */
export type RootEntry =
  | { readonly path: string; readonly kind: "dir" }
  | { readonly path: string; readonly kind: "symlink"; readonly target: string };

/** Top-level system paths mirrored from the host when they exist (as directories or symlinks). */
export const SYSTEM_ROOT_PATHS: readonly string[] = [
  "/usr",
  "/bin",
  "/sbin",
  "/lib",
  "/lib32",
  "/lib64",
  "/libx32",
];

/**
 * The parts of /etc a program commonly needs: the dynamic linker's cache (Debian's multiarch
 * libraries are found only through it), name resolution, time zone, TLS roots, and Debian's
 * alternatives (targets of symlinks in /usr/bin). None holds a secret; each is bound only if present.
 * /etc/passwd and /etc/group are not the host's: the jail gets its own two-line files.
 */
export const ETC_PATHS: readonly string[] = [
  "/etc/ld.so.cache",
  "/etc/ld.so.conf",
  "/etc/ld.so.conf.d",
  "/etc/alternatives",
  "/etc/localtime",
  "/etc/resolv.conf",
  "/etc/hosts",
  "/etc/host.conf",
  "/etc/nsswitch.conf",
  "/etc/gai.conf",
  "/etc/services",
  "/etc/protocols",
  "/etc/ssl",
  "/etc/ca-certificates",
];

/** Paths the jail makes itself; an extra bind may not land on or under them. */
const RESERVED_PATHS = ["/proc", "/dev"];

/** One step of building the jail's file tree, in bwrap's terms. */
export type JailMount =
  | { readonly kind: "ro-bind" | "ro-bind-try" | "bind"; readonly src: string; readonly dest: string }
  | { readonly kind: "symlink"; readonly target: string; readonly dest: string }
  | { readonly kind: "tmpfs" | "proc" | "dev"; readonly dest: string };

/** Everything the view depends on. */
export interface JailViewInput {
  /** The host's top-level system entries (see SYSTEM_ROOT_PATHS), as found by lstat. */
  readonly root: readonly RootEntry[];
  /** Host paths bound read-only only if they exist (ETC_PATHS by default). */
  readonly optionalPaths: readonly string[];
  /** The spec's extra read-only binds (host path = jail path). */
  readonly roBinds: readonly string[];
  /** The child's own directory, bound read-write at the same path; null when not yet known (validate). */
  readonly dir: string | null;
  /** The agent's state directory, never shown inside. */
  readonly agentStateDir: string;
}

/** True when `path` is `ancestor` or lies under it (both absolute and normalised). */
export function isWithin(path: string, ancestor: string): boolean {
  if (ancestor === "/") return true;
  return path === ancestor || path.startsWith(`${ancestor}/`);
}

/** True for an absolute path in normal form (no `.`/`..`/`//`, no trailing slash, no NUL). */
export function isCleanAbsolutePath(path: string): boolean {
  return (
    path.startsWith("/") &&
    !path.includes("\0") &&
    posix.normalize(path) === path &&
    (path === "/" || !path.endsWith("/"))
  );
}

/**
 * Check the spec's extra read-only binds: clean absolute paths, not `/` (the whole host), not where
 * the jail makes its own /proc and /dev, and not inside the agent's state directory.
 * Throws InvalidSpecError saying which path is wrong and why.
 */
export function checkRoBinds(roBinds: readonly string[], agentStateDir: string): void {
  for (const path of roBinds) {
    if (!isCleanAbsolutePath(path))
      throw new InvalidSpecError(`jail roBinds: ${JSON.stringify(path)} is not a clean absolute path`);
    if (path === "/")
      throw new InvalidSpecError(
        "jail roBinds: binding / would show the whole host; bind the directories needed",
      );
    const reserved = RESERVED_PATHS.find((r) => isWithin(path, r));
    if (reserved !== undefined)
      throw new InvalidSpecError(`jail roBinds: ${path} is under ${reserved}, which the jail makes itself`);
    if (isWithin(path, agentStateDir))
      throw new InvalidSpecError(
        `jail roBinds: ${path} is inside the agent's state directory ${agentStateDir}`,
      );
  }
}

/**
 * Build the ordered mount list. Throws InvalidSpecError for bad extra binds, and
 * SupervisorConfigError when the child's directory would contain the agent's state directory.
 */
export function jailView(input: JailViewInput): JailMount[] {
  const { root, optionalPaths, roBinds, dir, agentStateDir } = input;
  checkRoBinds(roBinds, agentStateDir);
  if (dir !== null) {
    if (!isCleanAbsolutePath(dir) || dir === "/")
      throw new SupervisorConfigError(
        `the child's directory ${JSON.stringify(dir)} is not a clean absolute path`,
      );
    if (isWithin(agentStateDir, dir))
      throw new SupervisorConfigError(
        `the child's directory ${dir} contains the agent's state directory ${agentStateDir}; put children's directories elsewhere`,
      );
  }
  const mounts: JailMount[] = [];
  for (const entry of root) {
    if (entry.kind === "dir") mounts.push({ kind: "ro-bind", src: entry.path, dest: entry.path });
    else mounts.push({ kind: "symlink", target: entry.target, dest: entry.path });
  }
  for (const path of optionalPaths) mounts.push({ kind: "ro-bind-try", src: path, dest: path });
  mounts.push(
    { kind: "proc", dest: "/proc" },
    { kind: "dev", dest: "/dev" },
    { kind: "tmpfs", dest: "/tmp" },
  );
  for (const path of roBinds) mounts.push({ kind: "ro-bind", src: path, dest: path });
  const shown = mounts.some(
    (m) => (m.kind === "ro-bind" || m.kind === "ro-bind-try") && isWithin(agentStateDir, m.src),
  );
  if (shown) mounts.push({ kind: "tmpfs", dest: agentStateDir });
  if (dir !== null) mounts.push({ kind: "bind", src: dir, dest: dir });
  return mounts;
}

/**
 * The host path behind `jailPath`, following the view's own symlink entries (such as /bin -> usr/bin)
 * but not symlinks inside bound directories. Null when nothing bound shows that path (it would not
 * exist inside, or lies on a tmpfs, /proc or /dev).
 */
export function hostPathOf(mounts: readonly JailMount[], jailPath: string): string | null {
  let path = posix.normalize(jailPath);
  for (let hop = 0; hop < 16; hop++) {
    let covering: JailMount | undefined;
    for (const m of mounts) if (isWithin(path, m.dest)) covering = m;
    if (covering === undefined) return null;
    if (covering.kind === "symlink") {
      if (path === covering.dest) return null; // the link itself is not a file
      const base = posix.resolve(posix.dirname(covering.dest), covering.target);
      path = posix.join(base, path.slice(covering.dest.length));
      continue;
    }
    if (!("src" in covering)) return null; // tmpfs, /proc, /dev: nothing of the host
    return covering.src + path.slice(covering.dest.length);
  }
  return null;
}

/** What program resolution needs to know about host files. */
export interface HostFileProbe {
  /** The target of a symlink at `hostPath`, or null if it is not a symlink (or absent). */
  readlink(hostPath: string): Promise<string | null>;
  /** True if `hostPath` is a regular file the jail's user may execute (by its owner, group or other bits). */
  isExecutable(hostPath: string): Promise<boolean>;
}

/** Resolve one jail path to an executable, following symlinks through the view. */
async function executableAt(
  mounts: readonly JailMount[],
  jailPath: string,
  probe: HostFileProbe,
): Promise<boolean> {
  let path = jailPath;
  for (let hop = 0; hop < 16; hop++) {
    const host = hostPathOf(mounts, path);
    if (host === null) return false;
    const target = await probe.readlink(host);
    if (target === null) return probe.isExecutable(host);
    path = posix.resolve(posix.dirname(path), target);
  }
  return false;
}

/**
 * Find the program a command names as the jail would: an absolute path through the view, or a bare
 * name through `searchPath` (colon-separated jail directories). Returns the jail path to execute, or
 * null if the jail would not find an executable.
 */
export async function resolveProgram(
  mounts: readonly JailMount[],
  program: string,
  searchPath: string,
  probe: HostFileProbe,
): Promise<string | null> {
  if (program.startsWith("/")) return (await executableAt(mounts, program, probe)) ? program : null;
  if (program.includes("/")) return null;
  for (const dir of searchPath.split(":")) {
    if (!dir.startsWith("/")) continue;
    const candidate = posix.join(dir, program);
    if (await executableAt(mounts, candidate, probe)) return candidate;
  }
  return null;
}
