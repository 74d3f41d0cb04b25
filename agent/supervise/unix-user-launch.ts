/**
 * Launching one `unix-user` child: open its log (root-owned, O_APPEND, never through a link), spawn
 * the shim (unix-user-spec.ts) in a session and process group of its own with the replaced
 * environment, wait until it has put itself in the child's cgroups, read its start time while it is
 * certainly alive, then tell it to go on and exec the child.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { constants as fsc } from "node:fs";
import { open } from "node:fs/promises";
import type { Duplex } from "node:stream";
import { type CgroupPlacement, cgroupEvents } from "./cgroup.ts";
import type { ChildExit } from "./driver.ts";
import { ChildStartError, InvalidSpecError } from "./errors.ts";
import { readProcess } from "./linux-process.ts";

/** How long the shim may take to put itself into its cgroups. */
export const ATTACH_TIMEOUT_MS = 10_000;

/** What to launch. */
export interface LaunchPlan {
  /** /bin/sh, and the shim's arguments (shimArgs). */
  readonly sh: string;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly cwd: string;
  readonly logPath: string;
  /** The child's cgroups, read when it ends to tell an OOM kill apart. */
  readonly placement: CgroupPlacement;
}

/** A launched child. */
export interface Launched {
  readonly pid: number;
  readonly startTicks: number;
  /** Resolves when the child ends, with its status as Node reaped it. */
  readonly exit: Promise<ChildExit>;
}

/** The exit of a spawned child, with the kernel's OOM kill named when that is what ended it. */
function watchExit(child: ChildProcess, placement: CgroupPlacement): Promise<ChildExit> {
  return new Promise((resolve) => {
    child.once("error", (err) =>
      resolve({ code: null, signal: null, reason: `spawn failed: ${err.message}` }),
    );
    child.once("exit", (code, signal) => {
      void cgroupEvents(placement)
        .catch(() => null)
        .then((ev) => {
          const oom = signal === "SIGKILL" && ev !== null && ev.oomKills > 0;
          resolve({
            code,
            signal,
            ...(oom ? { reason: "killed by the kernel at its memory limit (OOM)" } : {}),
          });
        });
    });
  });
}

/** Wait for the shim's "attached" on fd 3; its error text, its exit or its silence is a ChildStartError. */
function attached(child: ChildProcess, channel: Duplex, exit: Promise<ChildExit>): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let text = "";
    const timer = setTimeout(
      () =>
        finish(() => reject(new ChildStartError(`the shim did not attach within ${ATTACH_TIMEOUT_MS} ms`))),
      ATTACH_TIMEOUT_MS,
    );
    const finish = (fn: () => void) => {
      clearTimeout(timer);
      channel.removeAllListeners("data");
      fn();
    };
    channel.on("data", (chunk: Buffer) => {
      text += chunk.toString();
      if (text === "attached\n") finish(resolve);
      else if (text.endsWith("\n")) {
        finish(() => reject(new ChildStartError(`could not place the child in its cgroups: ${text.trim()}`)));
      }
    });
    void exit.then((e) =>
      finish(() =>
        reject(
          new ChildStartError(
            `the shim (pid ${child.pid}) ended (code ${e.code}, signal ${e.signal}) before attaching: ${text}`,
          ),
        ),
      ),
    );
  });
}

/**
 * Launch `plan`. On any failure the shim is killed before it can exec the child (closing fd 3 makes
 * its `read` fail) and the error is thrown; the caller removes the cgroups and the account.
 */
export async function launchChild(plan: LaunchPlan): Promise<Launched> {
  const log = await open(
    plan.logPath,
    fsc.O_WRONLY | fsc.O_APPEND | fsc.O_CREAT | fsc.O_NOFOLLOW,
    0o600,
  ).catch((err: unknown) => {
    throw new InvalidSpecError(
      `cannot open the log ${plan.logPath} (it must be a regular file, not a link)`,
      {
        cause: err,
      },
    );
  });
  let child: ChildProcess;
  try {
    if (!(await log.stat()).isFile())
      throw new InvalidSpecError(`the log ${plan.logPath} is not a regular file`);
    child = spawn(plan.sh, plan.args, {
      cwd: plan.cwd,
      env: plan.env,
      stdio: ["ignore", log.fd, log.fd, "pipe"],
      detached: true,
    });
  } finally {
    await log.close();
  }
  const exit = watchExit(child, plan.placement);
  const channel = child.stdio[3] as Duplex | null;
  try {
    if (!channel || child.pid === undefined) {
      const e = await exit;
      throw new ChildStartError(`the shim did not start: ${e.reason ?? "no pid"}`);
    }
    channel.on("error", () => {}); // a shim gone early is seen through `exit`
    await attached(child, channel, exit);
    const info = await readProcess(child.pid);
    if (info === null)
      throw new ChildStartError(`the shim (pid ${child.pid}) vanished before it ran the child`);
    channel.end("go\n");
    // The child outlives the agent on purpose: its process and pipe must not keep the agent's event
    // loop alive (a SIGTERMed ringd with a unix-user child running never exited). Its exit is still
    // seen while the agent runs.
    child.unref();
    (channel as { unref?: () => void }).unref?.();
    return { pid: child.pid, startTicks: info.startTicks, exit };
  } catch (err) {
    channel?.destroy();
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await exit;
    throw err;
  }
}
