/**
 * What the `unix-user` driver checks on the host before it changes anything: the programs it runs
 * (setpriv, prlimit, useradd ...), the child's own program, and the paths of a start request (the
 * child's directory must be reachable by its user and apart from the agent's state; its log must be
 * where the child cannot swap it for a link).
 */
import { realpath, stat } from "node:fs/promises";
import { dirname, isAbsolute, join, relative, sep } from "node:path";
import type { StartRequest } from "./driver.ts";
import { InvalidSpecError, MissingBinaryError } from "./errors.ts";
import type { AccountTools } from "./unix-user-account.ts";

/** Every program the driver runs itself, as absolute paths. */
export type HostTools = AccountTools & { readonly prlimit: string };

/** Where the driver's own programs are looked for. */
export const TOOL_DIRS: readonly string[] = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/** Each program the driver needs and the Debian package that has it. */
export const TOOL_PACKAGES: Readonly<Record<keyof HostTools, string>> = {
  useradd: "passwd",
  usermod: "passwd",
  userdel: "passwd",
  groupdel: "passwd",
  setpriv: "util-linux",
  prlimit: "util-linux",
  sh: "dash",
  chown: "coreutils",
  find: "findutils",
};

/** `name` itself if it holds a slash, else the first `dirs/name`, that is an executable file; or null. */
export async function findExecutable(name: string, dirs: readonly string[]): Promise<string | null> {
  const candidates = name.includes("/") ? [name] : dirs.map((d) => join(d, name));
  for (const path of candidates) {
    const st = await stat(path).catch(() => null);
    if (st?.isFile() && (st.mode & 0o111) !== 0) return path;
  }
  return null;
}

/** Find every program of TOOL_PACKAGES; MissingBinaryError names the first one missing and its package. */
export async function resolveHostTools(): Promise<HostTools> {
  const found: Record<string, string> = {};
  for (const [tool, pkg] of Object.entries(TOOL_PACKAGES)) {
    const path = await findExecutable(tool, TOOL_DIRS);
    if (path === null)
      throw new MissingBinaryError(`unix-user needs ${tool} (Debian package ${pkg}); install it`);
    found[tool] = path;
  }
  return found as unknown as HostTools;
}

/** True when `child` is `parent` or below it (both absolute, already resolved). */
export function isInside(parent: string, child: string): boolean {
  const rel = relative(parent, child);
  return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel));
}

/**
 * Check a start request's port and paths; InvalidSpecError says what is wrong, nothing is changed.
 * Returns the child's directory with links resolved.
 */
export async function checkRequestPaths(req: StartRequest, agentStateDir: string): Promise<string> {
  if (!Number.isSafeInteger(req.port) || req.port < 1 || req.port > 65_535) {
    throw new InvalidSpecError(`port must be 1..65535, got ${req.port}`);
  }
  if (!isAbsolute(req.dir) || !isAbsolute(req.logPath)) {
    throw new InvalidSpecError(`dir and logPath must be absolute paths (got ${req.dir}, ${req.logPath})`);
  }
  const dir = await realpath(req.dir).catch((err: unknown) => {
    throw new InvalidSpecError(`the child's directory ${req.dir} does not exist; create it first`, {
      cause: err,
    });
  });
  if (!(await stat(dir)).isDirectory())
    throw new InvalidSpecError(`the child's directory ${dir} is not a directory`);
  const stateDir = await realpath(agentStateDir).catch(() => agentStateDir);
  if (isInside(stateDir, dir) || isInside(dir, stateDir)) {
    throw new InvalidSpecError(
      `the child's directory ${dir} overlaps the agent's state directory ${stateDir}; put children elsewhere`,
    );
  }
  const logDir = await realpath(dirname(req.logPath)).catch(() => dirname(req.logPath));
  if (isInside(dir, logDir)) {
    throw new InvalidSpecError(
      `the log ${req.logPath} is inside the child's own directory, where the child could swap it for a ` +
        "link to another file; keep logs outside children's directories",
    );
  }
  for (let up = dirname(dir); ; up = dirname(up)) {
    const mode = (await stat(up)).mode;
    if ((mode & 0o001) === 0) {
      throw new InvalidSpecError(
        `the child's user cannot reach its directory ${dir}: ${up} (mode ${(mode & 0o777).toString(8)}) ` +
          "is not searchable by others; make every parent of a child's directory o+x",
      );
    }
    if (up === sep) break;
  }
  return dir;
}
