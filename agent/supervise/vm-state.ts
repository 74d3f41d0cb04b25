/**
 * The vm handle's saved state and the /proc facts recovery rests on. A pid alone may be recycled; a
 * pid with its start time (field 22 of /proc/PID/stat, in clock ticks since boot) names one process
 * for its whole life, so a recovered handle never latches onto an unrelated process.
 */
import { readFile } from "node:fs/promises";
import type { ChildHandle } from "./driver.ts";
import { HandleStateError } from "./errors.ts";
import { VM_DRIVER, VM_MACHINES, VM_STATE_VERSION, type VmAccel, type VmMachine } from "./vm-args.ts";

/** What a vm handle's `state` holds (version 1). */
export interface VmState {
  /** Start time of the qemu process in clock ticks since boot. */
  readonly startTicks: number;
  /** /proc/sys/kernel/random/boot_id at start: start ticks only name a process within one boot. */
  readonly bootId: string;
  /** The child's directory, where the sockets and pid file are. */
  readonly dir: string;
  readonly ctlSocket: string;
  readonly qmpSocket: string;
  readonly pidFile: string;
  readonly accel: VmAccel;
  readonly machine: VmMachine;
  readonly hostPort: number;
  readonly guestPort: number;
}

const isWhole = (n: unknown): n is number => typeof n === "number" && Number.isSafeInteger(n) && n >= 0;
const isPath = (p: unknown): p is string => typeof p === "string" && p.startsWith("/");

/** The state of a vm handle, checked; throws HandleStateError for another driver's or a malformed one. */
export function vmStateOf(handle: ChildHandle): VmState {
  if (handle?.driver !== VM_DRIVER)
    throw new HandleStateError(`handle of driver ${JSON.stringify(handle?.driver)} given to ${VM_DRIVER}`);
  if (handle.version !== VM_STATE_VERSION)
    throw new HandleStateError(
      `vm handle version ${handle.version} is not one this agent reads (it reads ${VM_STATE_VERSION})`,
    );
  const s = handle.state as Partial<VmState>;
  const ok =
    isWhole(s?.startTicks) &&
    typeof s.bootId === "string" &&
    s.bootId !== "" &&
    isPath(s.dir) &&
    isPath(s.ctlSocket) &&
    isPath(s.qmpSocket) &&
    isPath(s.pidFile) &&
    (s.accel === "kvm" || s.accel === "kvm:tcg" || s.accel === "tcg") &&
    VM_MACHINES.includes(s.machine as VmMachine) &&
    isWhole(s.hostPort) &&
    isWhole(s.guestPort) &&
    isWhole(handle.pid) &&
    handle.pid > 0;
  if (!ok) throw new HandleStateError(`vm handle of ${handle.name} has malformed state`);
  return s as VmState;
}

/** Field 22 (start time) and field 3 (state) of /proc/PID/stat text, or null for another shape. */
export function parseStatStart(text: string): { state: string; startTicks: number } | null {
  // The command (field 2) is in parentheses and may hold spaces and parentheses: count from the last ")".
  const fields = text
    .slice(text.lastIndexOf(")") + 1)
    .trim()
    .split(/\s+/);
  const state = fields[0];
  const startTicks = Number(fields[19]);
  if (text.lastIndexOf(")") < 0 || state === undefined || !Number.isSafeInteger(startTicks)) return null;
  return { state, startTicks };
}

/** The start time of a live (not zombie) process, or null if there is none with that pid. */
export async function processStartTicks(pid: number): Promise<number | null> {
  if (!Number.isSafeInteger(pid) || pid <= 0) return null;
  const text = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => null);
  const parsed = text === null ? null : parseStatStart(text);
  if (parsed === null || parsed.state === "Z" || parsed.state === "X") return null;
  return parsed.startTicks;
}

/** This boot's id (/proc/sys/kernel/random/boot_id). */
export async function readBootId(): Promise<string> {
  return (await readFile("/proc/sys/kernel/random/boot_id", "utf8")).trim();
}

/** True when `pid` is still the process that started at `startTicks` during boot `bootId`. */
export async function isSameProcess(pid: number, startTicks: number, bootId: string): Promise<boolean> {
  if (bootId !== (await readBootId())) return false;
  return (await processStartTicks(pid)) === startTicks;
}

/** Resident memory of a process in bytes (0 if it is gone). */
export async function processRssBytes(pid: number): Promise<number> {
  const text = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
  const kib = Number(/^VmRSS:\s+(\d+)/m.exec(text)?.[1] ?? 0);
  return kib * 1024;
}
