/**
 * Where a child's files live under the supervisor's children directory:
 *
 *   <childrenDir>/                 0711 root: children may pass through, not list
 *   <childrenDir>/<name>/          0711 root: the child's root, never writable by the child
 *   <childrenDir>/<name>/dir/      0700: the child's own directory (its HOME and cwd; a unix-user or
 *                                  jail driver hands it to the child's user)
 *   <childrenDir>/<name>/log/      0700 root: its log (child-log.ts), beside its directory, not in it
 *
 * Logs sit outside the child's writable directory because the agent (root) opens the log file: inside
 * it, the child could replace `log/current` with a link to any file and have root append to it. The
 * unix-user and jail drivers refuse a log path inside the child's directory for that reason.
 */
import { chmod, mkdir, stat } from "node:fs/promises";
import { dirname, isAbsolute, join, relative, resolve } from "node:path";
import { type ChildLogPaths, childLogPaths, prepareChildLog } from "./child-log.ts";
import { NameTakenError, SupervisorConfigError } from "./errors.ts";

/** Name of the child's own directory inside its root. */
export const CHILD_DIR_NAME = "dir";
/** Mode of the children directory and of each child's root: others may search, not list or write. */
export const CHILD_ROOT_MODE = 0o711;
/** Mode of the child's own directory when the supervisor makes it (the driver may chown it). */
export const CHILD_DIR_MODE = 0o700;

/** The paths of one child. */
export interface ChildLayout {
  /** `<childrenDir>/<name>`: holds `dir/` and `log/`. */
  readonly root: string;
  /** `<root>/dir`: the child's own directory; ChildRecord.dir. */
  readonly dir: string;
  /** `<root>/log/current` and its directory. */
  readonly log: ChildLogPaths;
}

/** The layout of child `name` under `childrenDir`. */
export function childLayout(childrenDir: string, name: string): ChildLayout {
  const root = join(childrenDir, name);
  return { root, dir: join(root, CHILD_DIR_NAME), log: childLogPaths(root) };
}

/** The layout of the child whose own directory (ChildRecord.dir) is `dir`. */
export function layoutOfDir(dir: string): ChildLayout {
  const root = dirname(dir);
  return { root, dir, log: childLogPaths(root) };
}

/**
 * SupervisorConfigError unless `childrenDir` is absolute and neither holds nor lies in the agent's
 * state directory `stateDir`: children must not reach the agent's state.
 */
export function checkChildrenDir(childrenDir: string, stateDir: string): void {
  if (!isAbsolute(childrenDir))
    throw new SupervisorConfigError(`childrenDir must be absolute, got ${childrenDir}`);
  const inside = (a: string, b: string) => {
    const rel = relative(resolve(b), resolve(a));
    return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel));
  };
  if (inside(childrenDir, stateDir) || inside(stateDir, childrenDir))
    throw new SupervisorConfigError(
      `childrenDir ${childrenDir} and the agent's state dir ${stateDir} must not contain one another: children must not reach the agent's state`,
    );
}

/** Make the children directory (0711), or give an existing one mode 0711 so children can reach theirs. */
export async function prepareChildrenDir(childrenDir: string): Promise<void> {
  await mkdir(childrenDir, { recursive: true, mode: CHILD_ROOT_MODE });
  const mode = (await stat(childrenDir)).mode & 0o777;
  if (mode !== CHILD_ROOT_MODE) await chmod(childrenDir, CHILD_ROOT_MODE);
}

/**
 * Make a new child's root (0711), its directory (0700) and its log. NameTakenError, changing nothing,
 * when the root already exists (it is not a known child's).
 */
export async function makeChildLayout(layout: ChildLayout): Promise<void> {
  try {
    await mkdir(layout.root, { mode: CHILD_ROOT_MODE });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST")
      throw new NameTakenError(
        `directory ${layout.root} already exists and is not a known child's: move it away or pick another name`,
      );
    throw err;
  }
  await chmod(layout.root, CHILD_ROOT_MODE); // mkdir's mode is filtered by the umask
  await mkdir(layout.dir, { mode: CHILD_DIR_MODE });
  await prepareChildLog(layout.root);
}
