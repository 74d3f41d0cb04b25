/**
 * The jail driver's host side: what it reads from the machine (the root's layout, files through the
 * jail's view, bwrap's status line, the log's tail) and how it signals. jail.ts wires these to the
 * pure builders in jail-args.ts and jail-view.ts; accounts and /proc come from the modules the
 * unix-user driver shares (unix-user-account.ts, linux-process.ts).
 */
import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";
import { access, lstat, readlink, stat } from "node:fs/promises";
import type { Readable } from "node:stream";
import { ChildStartError, InvalidSpecError, MissingBinaryError } from "./errors.ts";
import type { HostFileProbe, RootEntry } from "./jail-view.ts";

/** The host's top-level entries among `paths`, as directories or symlinks; absent ones are left out. */
export async function probeRoot(paths: readonly string[]): Promise<RootEntry[]> {
  const found: RootEntry[] = [];
  for (const path of paths) {
    const st = await lstat(path).catch(() => null);
    if (st === null) continue;
    if (st.isSymbolicLink()) found.push({ path, kind: "symlink", target: await readlink(path) });
    else if (st.isDirectory()) found.push({ path, kind: "dir" });
  }
  return found;
}

/** A probe for resolveProgram() that judges executability for `uid`/`gid` (-1: an unrelated user). */
export function hostFileProbe(uid: number, gid: number): HostFileProbe {
  return {
    async readlink(hostPath) {
      const st = await lstat(hostPath).catch(() => null);
      return st?.isSymbolicLink() === true ? readlink(hostPath) : null;
    },
    async isExecutable(hostPath) {
      const st = await stat(hostPath).catch(() => null);
      if (st === null || !st.isFile()) return false;
      const bit = st.uid === uid ? 0o100 : st.gid === gid ? 0o010 : 0o001;
      return (st.mode & bit) !== 0;
    },
  };
}

/** Throw MissingBinaryError unless `path` is an executable file; `hint` says how to install it. */
export async function requireBinary(path: string, hint: string): Promise<void> {
  const ok = await access(path, constants.X_OK).then(
    () => true,
    () => false,
  );
  if (!ok) throw new MissingBinaryError(`${path} is not installed or not executable; ${hint}`);
}

/** Send `signal` to a pid (or, negative, a process group); a process already gone is not an error. */
export function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ESRCH") throw e;
  }
}

/** Most bytes of a log that logTail quotes. */
export const LOG_TAIL_BYTES = 2048;

/** Up to LOG_TAIL_BYTES of what was written to `logPath` since offset `from`, as "; its log says: ..." (or ""). */
export function logTail(logPath: string, from: number): string {
  try {
    const fd = openSync(logPath, constants.O_RDONLY);
    try {
      const size = fstatSync(fd).size;
      const start = Math.max(from, size - LOG_TAIL_BYTES);
      const buf = Buffer.alloc(Math.max(0, size - start));
      readSync(fd, buf, 0, buf.length, start);
      const text = buf.toString("utf8").trim();
      return text === "" ? "" : `; its log says: ${text}`;
    } finally {
      closeSync(fd);
    }
  } catch {
    return "";
  }
}

/** How the shim ended: its exit code, or the signal that killed it. */
export interface ShimExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/**
 * Wait for bwrap's first JSON status line on `status` (`{"child-pid": N, ...}`: the namespaces exist
 * and the child is being executed) and resolve N, the host pid of the jail's pid 1. Rejects with a
 * ChildStartError saying why when the shim exits first, the line is not what bwrap writes, or `timeoutMs` passes.
 */
export function readJailPid(
  status: Readable | null,
  shimExit: Promise<ShimExit>,
  timeoutMs: number,
): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    let text = "";
    let settled = false;
    const settle = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      fn();
    };
    const timer = setTimeout(
      () => settle(() => reject(new ChildStartError(`bwrap did not report the jail within ${timeoutMs} ms`))),
      timeoutMs,
    );
    status?.on("data", (chunk: Buffer) => {
      text += chunk.toString("utf8");
      const nl = text.indexOf("\n");
      if (nl < 0 || settled) return;
      let pid: unknown;
      try {
        pid = (JSON.parse(text.slice(0, nl)) as { "child-pid"?: unknown })["child-pid"];
      } catch {}
      if (Number.isSafeInteger(pid) && (pid as number) > 0) settle(() => resolve(pid as number));
      else settle(() => reject(new ChildStartError(`bwrap reported no child pid: ${text.slice(0, nl)}`)));
    });
    void shimExit.then(({ code, signal }) =>
      settle(() => reject(new ChildStartError(`the jail exited during setup (status ${code ?? signal})`))),
    );
  });
}

/**
 * Open the child's log for appending as the agent (root), refusing a link or anything but a regular
 * file, so nobody can point the agent's write at another file. Returns the fd and its size before start.
 */
export function openLog(logPath: string): { fd: number; sizeBytes: number } {
  let fd: number;
  try {
    fd = openSync(
      logPath,
      constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW,
      0o600,
    );
  } catch (cause) {
    throw new InvalidSpecError(`cannot open the log ${logPath} (it must be a regular file, not a link)`, {
      cause,
    });
  }
  const st = fstatSync(fd);
  if (!st.isFile()) {
    closeSync(fd);
    throw new InvalidSpecError(`the log ${logPath} is not a regular file`);
  }
  return { fd, sizeBytes: st.size };
}
