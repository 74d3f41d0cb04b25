/**
 * Finding and ending the processes of one run without its handle (the LaunchSweeper ability of
 * driver.ts). A driver marks every host process it starts with CHILD_RUN_ENV=<runId> in its
 * environment; /proc/PID/environ shows the environment a process was exec'd with, and forks keep it,
 * so the run's processes are found by that entry, together with the members of the process groups
 * they lead. A driver adds what it knows to be the child's alone (its own uid, its cgroups).
 * Reading other users' environments needs root, which the drivers that run as other users have.
 */
import { readdir, readFile } from "node:fs/promises";
import { CHILD_RUN_ENV } from "./driver.ts";
import { LeftoverProcessError } from "./errors.ts";
import { type ProcessInfo, readProcess } from "./linux-process.ts";

/** How long a sweep goes on killing by default before it gives up, in ms. */
export const DEFAULT_SWEEP_TIMEOUT_MS = 10_000;

/** The environment entries that mark a run (none without a runId). */
export function runMarkEnv(runId: string | undefined): Record<string, string> {
  return runId === undefined ? {} : { [CHILD_RUN_ENV]: runId };
}

/** True when /proc/PID/environ text (NUL-separated entries) holds exactly CHILD_RUN_ENV=runId. */
export function environHasRun(environ: string, runId: string): boolean {
  return environ.split("\0").includes(`${CHILD_RUN_ENV}=${runId}`);
}

const live = (info: ProcessInfo | null): info is ProcessInfo =>
  info !== null && info.state !== "Z" && info.state !== "X";

/** The live processes of `pids` (gone ones and zombies left out). */
async function liveProcesses(pids: Iterable<number>): Promise<ProcessInfo[]> {
  return (await Promise.all([...pids].map(readProcess))).filter(live);
}

/** Live processes marked with `runId`, and the live members of the process groups they lead. */
export async function markedProcesses(runId: string): Promise<ProcessInfo[]> {
  const all = await liveProcesses((await readdir("/proc")).filter((e) => /^\d+$/.test(e)).map(Number));
  const marked = new Set<number>();
  for (const p of all) {
    const environ = await readFile(`/proc/${p.pid}/environ`, "latin1").catch(() => "");
    if (environHasRun(environ, runId)) marked.add(p.pid);
  }
  return all.filter((p) => marked.has(p.pid) || marked.has(p.pgrp));
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * SIGKILL what `find` names, again and again (a forking leftover refills), until it names nothing.
 * Never this process itself. Resolves with how many distinct processes (pid and start time) it
 * killed; LeftoverProcessError if some are still there after `timeoutMs`.
 */
export async function killUntilGone(
  find: () => Promise<readonly ProcessInfo[]>,
  timeoutMs: number = DEFAULT_SWEEP_TIMEOUT_MS,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  const killed = new Set<string>();
  for (let round = 0; ; round++) {
    const found = (await find()).filter((p) => p.pid !== process.pid);
    if (found.length === 0) return killed.size;
    if (Date.now() >= deadline)
      throw new LeftoverProcessError(
        `processes ${found.map((p) => p.pid).join(", ")} were still there after ${timeoutMs} ms of SIGKILL`,
      );
    for (const p of found) {
      try {
        process.kill(p.pid, "SIGKILL");
        killed.add(`${p.pid}:${p.startTicks}`);
      } catch {
        // gone meanwhile
      }
    }
    await sleep(round < 5 ? 2 : 20);
  }
}

/**
 * A driver's sweep: kill the processes marked with `runId` (and the groups they lead), and those
 * `alsoPids` names (what the driver knows to be the child's alone), until none is left. Resolves
 * with how many it killed.
 */
export function sweepRun(
  runId: string,
  alsoPids: () => Promise<readonly number[]> = async () => [],
  timeoutMs: number = DEFAULT_SWEEP_TIMEOUT_MS,
): Promise<number> {
  return killUntilGone(
    async () => [...(await markedProcesses(runId)), ...(await liveProcesses(await alsoPids()))],
    timeoutMs,
  );
}
