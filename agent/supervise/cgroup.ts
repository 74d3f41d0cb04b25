/**
 * Linux control groups for supervised children: make one group per child under a parent of ours in
 * every hierarchy cgroup-layout.ts found (cgroup v1 hierarchies, or the v2 unified tree), write its
 * limits, list and kill what runs in it, read its usage and limit counters, and remove it. A limit
 * asked for on a machine that cannot enforce it is refused with UnenforceableLimitError before
 * anything is made.
 *
 * Putting a process into the group is the caller's business (it writes its pid to each of
 * `procsFiles(placement)`, from a shim, before the child runs any code).
 */
import { mkdir, readdir, readFile, rmdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  type CgroupController,
  type CgroupHierarchy,
  type CgroupLayout,
  type CgroupLimits,
  checkEnforceable,
  checkRelPath,
  limitWrites,
} from "./cgroup-layout.ts";
import { HandleStateError, NameTakenError, UnenforceableLimitError } from "./errors.ts";

/** One child's group in one hierarchy. */
export interface CgroupNode extends CgroupHierarchy {
  /** Path of the group below `mountPath` (no leading slash). */
  readonly relPath: string;
}

/** Where a child's cgroup lives: one directory per hierarchy. Plain JSON, kept in the child's handle. */
export interface CgroupPlacement {
  readonly nodes: readonly CgroupNode[];
}

/** Where the group `relPath` is (or would be) in every hierarchy of `layout`; changes nothing. */
export function cgroupPlacement(layout: CgroupLayout, relPath: string): CgroupPlacement {
  checkRelPath(relPath);
  return { nodes: layout.hierarchies.map((h) => ({ ...h, relPath })) };
}

/** The directory of each node of `placement`. */
export function cgroupDirs(placement: CgroupPlacement): string[] {
  return placement.nodes.map((n) => join(n.mountPath, n.relPath));
}

/** The `cgroup.procs` files a process must write its pid to, one per hierarchy. */
export function procsFiles(placement: CgroupPlacement): string[] {
  return cgroupDirs(placement).map((d) => join(d, "cgroup.procs"));
}

const isErrno = (err: unknown, ...codes: string[]): boolean =>
  typeof err === "object" && err !== null && codes.includes((err as NodeJS.ErrnoException).code ?? "");

const readPids = async (dir: string): Promise<number[]> => {
  const text = await readFile(join(dir, "cgroup.procs"), "utf8").catch((err: unknown) => {
    if (isErrno(err, "ENOENT")) return "";
    throw err;
  });
  return text
    .split("\n")
    .filter((l) => l !== "")
    .map(Number);
};

/** True when every live process of `pids` has `uid` as its real uid (a vanished one counts as fine). */
async function allRunAs(pids: readonly number[], uid: number): Promise<boolean> {
  for (const pid of pids) {
    const real = await realUid(pid);
    if (real !== undefined && real !== uid) return false;
  }
  return true;
}

/** The real uid of `pid` from /proc, or undefined when it is gone. */
async function realUid(pid: number): Promise<number | undefined> {
  const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => undefined);
  const real = status === undefined ? undefined : /^Uid:\s+(\d+)/m.exec(status)?.[1];
  return real === undefined ? undefined : Number(real);
}

/** Every process in any of the placement's groups (zombies are not listed). */
export async function cgroupPids(placement: CgroupPlacement): Promise<number[]> {
  const all = new Set<number>();
  for (const dir of cgroupDirs(placement)) for (const pid of await readPids(dir)) all.add(pid);
  return [...all];
}

/** Enable our controllers for the children of every ancestor of a v2 group (root down to its parent). */
async function enableV2Subtree(node: CgroupNode): Promise<void> {
  const segments = node.relPath.split("/");
  const value = node.controllers.map((c) => `+${c}`).join(" ");
  for (let i = 0; i < segments.length; i++) {
    const dir = join(node.mountPath, ...segments.slice(0, i));
    await mkdir(dir, { recursive: true });
    try {
      await writeFile(join(dir, "cgroup.subtree_control"), value);
    } catch (err) {
      throw new UnenforceableLimitError(
        `cannot enable the ${node.controllers.join(", ")} controllers below ${dir} (cgroup v2 refuses ` +
          `controllers to a group whose parent has processes of its own); give the driver a cgroupParent ` +
          `delegated to the agent`,
        { cause: err },
      );
    }
  }
}

async function applyLimits(node: CgroupNode, limits: CgroupLimits): Promise<void> {
  const dir = join(node.mountPath, node.relPath);
  for (const w of limitWrites(node, limits)) {
    try {
      await writeFile(join(dir, w.file), w.value);
    } catch (err) {
      if (w.optional && isErrno(err, "ENOENT")) continue;
      throw new UnenforceableLimitError(
        `cannot set ${w.file} = ${w.value} in ${dir}: the kernel refused it (${(err as Error).message})`,
        { cause: err },
      );
    }
  }
}

/**
 * Make the group `relPath` (for example "enjin/enjin-web") in every hierarchy of `layout` and put
 * `limits` on it. A leftover empty group of that name is replaced; one with processes in it is
 * refused with NameTakenError — unless `adoptUid` is given and every process in it runs as that uid:
 * then the group is kept as it is, with its processes, and only its limits are set again (a
 * supervising child restarting beside the children it left running). On any failure what this call
 * made is removed again.
 */
export async function createCgroup(
  layout: CgroupLayout,
  relPath: string,
  limits: CgroupLimits,
  opts: { readonly adoptUid?: number } = {},
): Promise<CgroupPlacement> {
  checkEnforceable(layout, limits);
  checkRelPath(relPath);
  const placement = cgroupPlacement(layout, relPath);
  if (opts.adoptUid !== undefined) {
    const pids = await cgroupPids(placement);
    if (pids.length > 0 && (await allRunAs(pids, opts.adoptUid))) {
      for (const node of placement.nodes) await applyLimits(node, limits);
      return placement;
    }
  }
  for (const dir of cgroupDirs(placement)) {
    const pids = await readPids(dir);
    if (pids.length > 0) {
      const owners = await Promise.all(
        pids.slice(0, 5).map(async (pid) => `${pid} (uid ${await realUid(pid)})`),
      );
      throw new NameTakenError(
        `cgroup ${dir} already exists with processes ${owners.join(", ")} in it; ` +
          `stop that child (or recover it) before starting another of the same name` +
          (opts.adoptUid === undefined ? "" : ` (only processes of uid ${opts.adoptUid} are adopted)`),
      );
    }
  }
  const made: CgroupNode[] = [];
  try {
    for (const node of placement.nodes) {
      if (node.version === 2) await enableV2Subtree(node);
      const dir = join(node.mountPath, node.relPath);
      await rmdir(dir).catch((err: unknown) => {
        if (!isErrno(err, "ENOENT")) throw err;
      });
      await mkdir(dir, { recursive: true });
      made.push(node);
      await applyLimits(node, limits);
    }
  } catch (err) {
    await removeCgroup({ nodes: made }, 1_000).catch(() => {});
    throw err;
  }
  return placement;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * SIGKILL everything in the placement's groups, again and again (a forking child refills them),
 * until they are empty or `timeoutMs` passes. Uses v2's `cgroup.kill` where the kernel has it.
 * Resolves true when empty.
 */
export async function killCgroup(placement: CgroupPlacement, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (const node of placement.nodes.filter((n) => n.version === 2)) {
    await writeFile(join(node.mountPath, node.relPath, "cgroup.kill"), "1").catch(() => {});
  }
  for (let round = 0; ; round++) {
    const pids = await cgroupPids(placement);
    if (pids.length === 0) return true;
    if (Date.now() >= deadline) return false;
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch (err) {
        if (!isErrno(err, "ESRCH")) throw err;
      }
    }
    await sleep(round < 5 ? 1 : 10);
  }
}

/** Kill what is left and remove the groups (retrying while the kernel still counts exiting tasks). */
export async function removeCgroup(placement: CgroupPlacement, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  await killCgroup(placement, timeoutMs);
  for (const dir of cgroupDirs(placement)) {
    for (;;) {
      try {
        await rmdir(dir);
        break;
      } catch (err) {
        if (isErrno(err, "ENOENT")) break;
        if (!isErrno(err, "EBUSY") || Date.now() >= deadline) throw err;
        await killCgroup(placement, Math.max(0, deadline - Date.now()));
        await sleep(10);
      }
    }
  }
}

const readNumber = async (file: string): Promise<number | null> => {
  const text = await readFile(file, "utf8").catch(() => null);
  if (text === null) return null;
  const n = Number(text.trim());
  return Number.isFinite(n) ? n : null;
};

const readKeyed = async (file: string, key: string): Promise<number | null> => {
  const text = await readFile(file, "utf8").catch(() => null);
  const line = text?.split("\n").find((l) => l.startsWith(`${key} `));
  return line === undefined ? null : Number(line.slice(key.length + 1));
};

const nodeWith = (p: CgroupPlacement, c: CgroupController): CgroupNode | undefined =>
  p.nodes.find((n) => n.controllers.includes(c));

/** Memory in use and processes (tasks) counted by the groups; null where the controller is absent. */
export async function cgroupUsage(
  placement: CgroupPlacement,
): Promise<{ memoryBytes: number | null; pids: number | null }> {
  const mem = nodeWith(placement, "memory");
  const pids = nodeWith(placement, "pids");
  const at = (n: CgroupNode, file: string) => join(n.mountPath, n.relPath, file);
  return {
    memoryBytes: mem
      ? await readNumber(at(mem, mem.version === 1 ? "memory.usage_in_bytes" : "memory.current"))
      : null,
    pids: pids ? await readNumber(at(pids, "pids.current")) : null,
  };
}

/** What the group's limits did: the most memory it held, OOM kills, and forks refused at pids.max. */
export interface CgroupEvents {
  /** Highest memory use seen (v1 memory.max_usage_in_bytes, v2 memory.peak; 0 where absent). */
  readonly memoryPeakBytes: number;
  readonly oomKills: number;
  readonly forksRefused: number;
}

/**
 * Read the limit counters (0 where the controller or the counter is absent). Not memory.failcnt:
 * recent kernels leave it at 0 on v1 even when charges fail at the limit.
 */
export async function cgroupEvents(placement: CgroupPlacement): Promise<CgroupEvents> {
  const mem = nodeWith(placement, "memory");
  const pids = nodeWith(placement, "pids");
  const at = (n: CgroupNode, file: string) => join(n.mountPath, n.relPath, file);
  let memoryPeakBytes = 0;
  let oomKills = 0;
  if (mem?.version === 1) {
    memoryPeakBytes = (await readNumber(at(mem, "memory.max_usage_in_bytes"))) ?? 0;
    oomKills = (await readKeyed(at(mem, "memory.oom_control"), "oom_kill")) ?? 0;
  } else if (mem) {
    memoryPeakBytes = (await readNumber(at(mem, "memory.peak"))) ?? 0;
    oomKills = (await readKeyed(at(mem, "memory.events"), "oom_kill")) ?? 0;
  }
  const forksRefused = pids ? ((await readKeyed(at(pids, "pids.events"), "max")) ?? 0) : 0;
  return { memoryPeakBytes, oomKills, forksRefused };
}

/**
 * Read a placement back from a saved handle: every node must be a hierarchy `layout` has now, at a
 * checked path. Throws HandleStateError otherwise.
 */
export function placementFromState(value: unknown, layout: CgroupLayout): CgroupPlacement {
  const nodes = (value as { nodes?: unknown } | null)?.nodes;
  if (!Array.isArray(nodes)) throw new HandleStateError("handle state: cgroup.nodes is not a list");
  return {
    nodes: nodes.map((raw: Partial<CgroupNode>) => {
      const h = layout.hierarchies.find((x) => x.mountPath === raw?.mountPath && x.version === raw?.version);
      if (!h || typeof raw.relPath !== "string") {
        throw new HandleStateError(
          `handle state: cgroup node ${JSON.stringify(raw)} is not a hierarchy here`,
        );
      }
      try {
        checkRelPath(raw.relPath);
      } catch (err) {
        throw new HandleStateError(`handle state: bad cgroup path ${JSON.stringify(raw.relPath)}`, {
          cause: err,
        });
      }
      return { ...h, relPath: raw.relPath };
    }),
  };
}

/** Remove the parent group `relPath` in every hierarchy if it is empty (ENOTEMPTY/EBUSY are left be). */
export async function removeEmptyParent(layout: CgroupLayout, relPath: string): Promise<void> {
  checkRelPath(relPath);
  for (const h of layout.hierarchies) {
    const dir = join(h.mountPath, relPath);
    const children = await readdir(dir, { withFileTypes: true }).catch(() => []);
    if (children.some((d) => d.isDirectory())) continue;
    await rmdir(dir).catch((err: unknown) => {
      if (!isErrno(err, "ENOENT", "EBUSY", "ENOTEMPTY")) throw err;
    });
  }
}
