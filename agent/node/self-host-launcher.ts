/**
 * How a ringd child runs the same ringd as its parent: the same node binary, the same install (the
 * built JavaScript in dist/, or the TypeScript sources under tsx when that is how this module was
 * loaded), and the node options ringd's shebang line gives (`#!/usr/bin/env -S node OPTIONS`), as
 * scripts/ringd-process.ts does for tests. Every path is absolute, so the command works from the
 * child's own directory, as another user, and inside a jail that binds `readOnlyPaths`.
 */
import { closeSync, existsSync, openSync, readSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { EnjinError } from "../../protocol/index.ts";

/** The jail strategy's registry name (its spec takes `driver.roBinds`). */
export const JAIL_STRATEGY = "jail";

/** ringd's entry script is not where this install should have it. */
export class RingdEntryMissingError extends EnjinError {
  override readonly reason = "ringd-entry-missing";
}

/** The words that run ringd, and what of the host they need to see. */
export interface RingdLauncher {
  /** node, its options, the loader if any, and ringd's entry script: append ringd's arguments. */
  readonly command: readonly string[];
  /** Host directories the command reads (the install with its node_modules, node's own). */
  readonly readOnlyPaths: readonly string[];
}

/** Node options on the first line of `script` when it is `#!/usr/bin/env -S node OPTIONS`. */
export function shebangOptions(script: string): string[] {
  const fd = openSync(script, "r");
  try {
    const head = Buffer.alloc(256);
    const line = head
      .subarray(0, readSync(fd, head, 0, head.length, 0))
      .toString()
      .split("\n")[0]!;
    const m = /^#!\/usr\/bin\/env -S node((?: +\S+)*) *$/.exec(line);
    return m === null ? [] : m[1]!.split(" ").filter((o) => o !== "");
  } finally {
    closeSync(fd);
  }
}

/** The nearest directory at or above `dir` holding node_modules (the install's root). */
function installRoot(dir: string): string {
  for (let d = dir; ; d = dirname(d)) {
    if (existsSync(join(d, "node_modules"))) return d;
    if (dirname(d) === d) return dir;
  }
}

/**
 * ringd as this process would run it: `dist/ctl/bin/ringd.js` beside this module when it is the
 * built JavaScript, else `ctl/bin/ringd.ts` with tsx's loader (resolved to its file, since the
 * child's cwd has no node_modules). RingdEntryMissingError when that script does not exist.
 */
export function ringdLauncher(moduleUrl: string = import.meta.url): RingdLauncher {
  const fromSources = moduleUrl.endsWith(".ts");
  const entry = fileURLToPath(new URL(`../../ctl/bin/ringd.${fromSources ? "ts" : "js"}`, moduleUrl));
  if (!existsSync(entry))
    throw new RingdEntryMissingError(
      `ringd's entry ${entry} is missing: this install is incomplete (run 'npm run build' for dist/)`,
    );
  const loader = fromSources ? ["--import", import.meta.resolve("tsx")] : [];
  const root = installRoot(dirname(entry));
  const nodeDir = dirname(process.execPath);
  return {
    command: [process.execPath, ...shebangOptions(entry), ...loader, entry],
    readOnlyPaths: nodeDir.startsWith("/usr/") ? [root] : [root, nodeDir],
  };
}
