/**
 * Which cgroup controllers this machine has and where (pure parsing of the mount table, plus the one
 * read that feeds it), whether a set of limits can be enforced here, and the file writes that put
 * limits on a group. cgroup.ts makes and removes the groups themselves.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { UnenforceableLimitError } from "./errors.ts";

/** The controllers supervision uses. */
export type CgroupController = "memory" | "pids" | "cpu";
/** All of them, in a fixed order. */
export const CGROUP_CONTROLLERS: readonly CgroupController[] = ["memory", "pids", "cpu"];
/** CFS period every child gets; `cpuMillis` becomes a quota per this period. */
export const CPU_PERIOD_US = 100_000;
/** The kernel refuses CFS quotas below 1 ms. */
export const MIN_CPU_QUOTA_US = 1_000;
/** Where mounts are listed. */
export const MOUNTS_PATH = "/proc/self/mounts";

/** One mounted hierarchy holding some of the controllers we use. */
export interface CgroupHierarchy {
  readonly version: 1 | 2;
  readonly mountPath: string;
  readonly controllers: readonly CgroupController[];
}

/** What this machine offers. A controller in none of `hierarchies` is not available. */
export interface CgroupLayout {
  readonly hierarchies: readonly CgroupHierarchy[];
}

/** The limits a cgroup can hold (a subset of the driver contract's ChildLimits). */
export interface CgroupLimits {
  readonly memoryBytes?: number;
  readonly pids?: number;
  readonly cpuMillis?: number;
}

/** One line of /proc/self/mounts. */
export interface MountEntry {
  readonly source: string;
  readonly mountPath: string;
  readonly type: string;
  readonly options: readonly string[];
}

/** A file write that sets a limit; `optional` ones are skipped where the kernel lacks the file. */
export interface LimitWrite {
  readonly file: string;
  readonly value: string;
  readonly optional: boolean;
}

const unescapeMount = (field: string): string =>
  field.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(Number.parseInt(oct, 8)));

/** Parse /proc/self/mounts (octal escapes such as `\040` for a space are decoded). */
export function parseMounts(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split("\n")) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 4) continue;
    entries.push({
      source: unescapeMount(fields[0]!),
      mountPath: unescapeMount(fields[1]!),
      type: fields[2]!,
      options: fields[3]!.split(","),
    });
  }
  return entries;
}

const ours = (names: readonly string[]): CgroupController[] =>
  CGROUP_CONTROLLERS.filter((c) => names.includes(c));

/**
 * Which hierarchy holds each of our controllers. v1 mounts name their controllers in their options;
 * a v2 mount offers what its root `cgroup.controllers` lists (`v2Controllers` reads it), less any
 * controller a v1 hierarchy holds already (a controller lives in one hierarchy at a time).
 */
export function layoutFromMounts(
  mounts: readonly MountEntry[],
  v2Controllers: (mountPath: string) => readonly string[],
): CgroupLayout {
  const hierarchies: CgroupHierarchy[] = [];
  const taken = new Set<CgroupController>();
  for (const m of mounts) {
    if (m.type !== "cgroup") continue;
    const controllers = ours(m.options).filter((c) => !taken.has(c));
    if (controllers.length === 0) continue;
    for (const c of controllers) taken.add(c);
    hierarchies.push({ version: 1, mountPath: m.mountPath, controllers });
  }
  const unified = mounts.find((m) => m.type === "cgroup2");
  if (unified) {
    const controllers = ours(v2Controllers(unified.mountPath)).filter((c) => !taken.has(c));
    if (controllers.length > 0) hierarchies.push({ version: 2, mountPath: unified.mountPath, controllers });
  }
  return { hierarchies };
}

/** Read this machine's layout from its mount table. */
export async function detectCgroups(mountsPath: string = MOUNTS_PATH): Promise<CgroupLayout> {
  const mounts = parseMounts(await readFile(mountsPath, "utf8"));
  const v2: Record<string, string[]> = {};
  for (const m of mounts.filter((e) => e.type === "cgroup2")) {
    const text = await readFile(join(m.mountPath, "cgroup.controllers"), "utf8").catch(() => "");
    v2[m.mountPath] = text.trim().split(/\s+/);
  }
  return layoutFromMounts(mounts, (path) => v2[path] ?? []);
}

/** Whether `controller` is mounted anywhere in `layout`. */
export function hasController(layout: CgroupLayout, controller: CgroupController): boolean {
  return layout.hierarchies.some((h) => h.controllers.includes(controller));
}

/** The CFS quota for `cpuMillis` thousandths of a core, per CPU_PERIOD_US. */
export function cpuQuotaUs(cpuMillis: number): number {
  return Math.round((cpuMillis * CPU_PERIOD_US) / 1000);
}

/**
 * Throw UnenforceableLimitError, naming the limit and why, for any limit in `limits` this layout
 * cannot enforce. Changes nothing.
 */
export function checkEnforceable(layout: CgroupLayout, limits: CgroupLimits): void {
  const need: [keyof CgroupLimits, CgroupController][] = [
    ["memoryBytes", "memory"],
    ["pids", "pids"],
    ["cpuMillis", "cpu"],
  ];
  for (const [limit, controller] of need) {
    if (limits[limit] === undefined || hasController(layout, controller)) continue;
    throw new UnenforceableLimitError(
      `limits.${limit} cannot be enforced: this machine has no cgroup "${controller}" controller mounted ` +
        `(checked ${MOUNTS_PATH}); mount it, or drop limits.${limit} from the spec`,
    );
  }
  if (limits.cpuMillis !== undefined && cpuQuotaUs(limits.cpuMillis) < MIN_CPU_QUOTA_US) {
    const least = Math.ceil((MIN_CPU_QUOTA_US * 1000) / CPU_PERIOD_US);
    throw new UnenforceableLimitError(
      `limits.cpuMillis ${limits.cpuMillis} cannot be enforced: the kernel's smallest CFS quota is ` +
        `${MIN_CPU_QUOTA_US} µs per ${CPU_PERIOD_US} µs period, i.e. cpuMillis ${least}; ask for at least that`,
    );
  }
}

/** The files to write, in order, to put `limits` on a group of hierarchy `h` (pure). */
export function limitWrites(h: CgroupHierarchy, limits: CgroupLimits): LimitWrite[] {
  const writes: LimitWrite[] = [];
  const add = (file: string, value: string | number, optional = false) =>
    writes.push({ file, value: String(value), optional });
  const has = (c: CgroupController) => h.controllers.includes(c);
  if (has("memory") && limits.memoryBytes !== undefined) {
    if (h.version === 1) {
      // memsw (memory + swap) must be at least the memory limit: set memory first, then the same for
      // memsw so the child cannot spill into swap either. Absent when swap accounting is off.
      add("memory.limit_in_bytes", limits.memoryBytes);
      add("memory.memsw.limit_in_bytes", limits.memoryBytes, true);
    } else {
      add("memory.max", limits.memoryBytes);
      add("memory.swap.max", 0, true);
    }
  }
  if (has("pids") && limits.pids !== undefined) add("pids.max", limits.pids);
  if (has("cpu") && limits.cpuMillis !== undefined) {
    const quotaUs = cpuQuotaUs(limits.cpuMillis);
    if (h.version === 1) {
      add("cpu.cfs_period_us", CPU_PERIOD_US);
      add("cpu.cfs_quota_us", quotaUs);
    } else {
      add("cpu.max", `${quotaUs} ${CPU_PERIOD_US}`);
    }
  }
  return writes;
}

const SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;

/** Check a group path below a mount: relative, segments of safe characters, no `.` or `..`. */
export function checkRelPath(relPath: string): void {
  const segments = relPath.split("/");
  if (relPath.length > 255 || !segments.every((s) => SEGMENT.test(s))) {
    throw new UnenforceableLimitError(
      `cgroup path "${relPath}" is not a relative path of [A-Za-z0-9_.-] segments; fix the driver's cgroupParent`,
    );
  }
}
