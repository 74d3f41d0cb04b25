/**
 * What /proc says about a process: its state, start time (clock ticks since boot, fixed for the life
 * of the process, so a pid and its start time name one process and never a recycled pid), process
 * group and real uid. Parsing is pure; the readers return null for a process that is gone.
 */
import { readdir, readFile } from "node:fs/promises";

/** One process as /proc/PID/stat and /proc/PID/status show it. */
export interface ProcessInfo {
  readonly pid: number;
  /** One letter: R, S, D, Z (zombie), X (dead), T ... */
  readonly state: string;
  readonly ppid: number;
  readonly pgrp: number;
  /** Field 22 of /proc/PID/stat: start time in clock ticks since boot. */
  readonly startTicks: number;
}

/**
 * Parse /proc/PID/stat. The command name (field 2) is in parentheses and may itself hold spaces and
 * parentheses, so fields are counted from the last ")". Returns null for text of another shape.
 */
export function parseProcStat(text: string): Omit<ProcessInfo, "pid"> | null {
  const close = text.lastIndexOf(")");
  if (close < 0) return null;
  const fields = text
    .slice(close + 1)
    .trim()
    .split(/\s+/);
  // fields[0] is field 3 (state), so field N is fields[N - 3].
  const state = fields[0];
  const ppid = Number(fields[1]);
  const pgrp = Number(fields[2]);
  const startTicks = Number(fields[19]);
  if (state === undefined || !/^[A-Za-z]$/.test(state) || !Number.isSafeInteger(startTicks)) return null;
  return { state, ppid, pgrp, startTicks };
}

/** The real uid from /proc/PID/status text (the first number of its `Uid:` line), or null. */
export function parseStatusUid(text: string): number | null {
  const line = text.split("\n").find((l) => l.startsWith("Uid:"));
  const uid = Number(line?.slice(4).trim().split(/\s+/)[0]);
  return line !== undefined && Number.isSafeInteger(uid) ? uid : null;
}

/** VmRSS from /proc/PID/status text, in bytes (0 when absent, as for a kernel thread or zombie). */
export function parseStatusRssBytes(text: string): number {
  const line = text.split("\n").find((l) => l.startsWith("VmRSS:"));
  const kib = Number(line?.slice(6).trim().split(/\s+/)[0]);
  return Number.isFinite(kib) ? kib * 1024 : 0;
}

const readOrNull = (path: string): Promise<string | null> => readFile(path, "utf8").catch(() => null);

/** Read a process, or null if there is none with that pid. */
export async function readProcess(pid: number): Promise<ProcessInfo | null> {
  if (!Number.isSafeInteger(pid) || pid <= 0) return null;
  const text = await readOrNull(`/proc/${pid}/stat`);
  const parsed = text === null ? null : parseProcStat(text);
  return parsed === null ? null : { pid, ...parsed };
}

/** The real uid of a process, or null if it is gone. */
export async function readProcessUid(pid: number): Promise<number | null> {
  const text = await readOrNull(`/proc/${pid}/status`);
  return text === null ? null : parseStatusUid(text);
}

/** True when `pid` is the very process that started at `startTicks` and has not exited (zombies count as exited). */
export async function isSameProcessAlive(pid: number, startTicks: number): Promise<boolean> {
  const info = await readProcess(pid);
  return info !== null && info.startTicks === startTicks && info.state !== "Z" && info.state !== "X";
}

/** This boot's id (/proc/sys/kernel/random/boot_id): pid and start time name one process within one boot. */
export async function readBootId(): Promise<string> {
  return (await readFile("/proc/sys/kernel/random/boot_id", "utf8")).trim();
}

/** Every live (not zombie) process whose real uid is `uid`. */
export async function processesOfUid(uid: number): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const status = await readOrNull(`/proc/${entry}/status`);
    if (status === null || parseStatusUid(status) !== uid) continue;
    if (/^State:\s+[ZX]/m.test(status)) continue;
    found.push(Number(entry));
  }
  return found;
}

/** Total resident memory of `pids`, in bytes (processes that are gone count 0). */
export async function rssBytes(pids: readonly number[]): Promise<number> {
  let total = 0;
  for (const pid of pids) {
    const status = await readOrNull(`/proc/${pid}/status`);
    if (status !== null) total += parseStatusRssBytes(status);
  }
  return total;
}
