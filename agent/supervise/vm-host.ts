/**
 * Host-side helpers of the vm driver: finding qemu, reading the end of a log to say why qemu failed,
 * signalling a process that may already be gone, and bounded waits.
 */
import { open, stat } from "node:fs/promises";
import { join } from "node:path";

/** Where a qemu named without a path is looked for. */
export const BINARY_DIRS: readonly string[] = [
  "/usr/local/sbin",
  "/usr/local/bin",
  "/usr/sbin",
  "/usr/bin",
  "/sbin",
  "/bin",
];
/** How much of the log's end a start failure quotes. */
export const LOG_TAIL_BYTES = 2_000;

/** Wait `ms` milliseconds. */
export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

/** True if `promise` settles within `ms`; the timer is cleared either way, so nothing is left pending. */
export async function settledWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), Math.max(0, ms));
  });
  try {
    return await Promise.race([
      promise.then(
        () => true,
        () => true,
      ),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Send a signal; a process that is already gone (ESRCH) is not an error. */
export function signalQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
  }
}

/** The executable file `name` (a path, or a name looked up in BINARY_DIRS), or null. */
export async function findExecutable(name: string): Promise<string | null> {
  for (const path of name.includes("/") ? [name] : BINARY_DIRS.map((d) => join(d, name))) {
    const st = await stat(path).catch(() => null);
    if (st?.isFile() && (st.mode & 0o111) !== 0) return path;
  }
  return null;
}

/** The last bytes of the log, to say why qemu failed. */
export async function logTail(logPath: string): Promise<string> {
  const file = await open(logPath, "r").catch(() => null);
  if (!file) return "";
  try {
    const { size } = await file.stat();
    const buf = Buffer.alloc(Math.min(size, LOG_TAIL_BYTES));
    await file.read(buf, 0, buf.length, size - buf.length);
    return buf.toString("utf8").trim();
  } finally {
    await file.close();
  }
}
