/**
 * Log capture. A child's stdout and stderr go straight to `<childRoot>/log/current`, opened with
 * O_APPEND by the driver and handed to the child as its fds 1 and 2: the child keeps writing while
 * the agent restarts, and no agent process sits in the data path. `<childRoot>` is the directory that
 * holds the child's own directory and its log side by side (child-layout.ts): the log is never inside
 * what the child may write, or it could swap the file for a link that root then appends to.
 *
 * The agent rotates by size without the child's help (older copies shift to `.2` ... `.keep`; the
 * oldest is deleted). Where the filesystem can (ext4, xfs), it copies the block-aligned start of
 * `current` to `current.1` and then cuts exactly that range out of `current` (fallocate's
 * collapse-range): whatever the child wrote meanwhile stays in `current`, so nothing is lost, and
 * `current.1` + `current` is still the whole stream. Elsewhere (tmpfs, or a log smaller than a block)
 * it does what logrotate's copytruncate does: copy all of `current`, then truncate it to zero; what
 * the child writes in the instant between the last copied byte and the truncate is lost (the copy
 * re-reads until the file stops growing to keep that window to a few microseconds). Either way the
 * child's fd is O_APPEND, so its next write lands at the new end, never leaving a hole.
 *
 * `tailChildLog` reads the last lines across rotated files; `followChildLog` yields new bytes as they
 * are written, across rotations; child-log-cursor.ts reads on from a cursor, one request at a time
 * (for `ringctl child logs --follow` through the mesh).
 */
import { execFile } from "node:child_process";
import { constants, openSync } from "node:fs";
import { type FileHandle, mkdir, open, rename, rm, stat, truncate } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { exists, fileId, readRange, SHRUNK_PATIENCE, sizeOf, whyShorter } from "./child-log-files.ts";
import { SupervisorConfigError } from "./errors.ts";

/** Name of the log directory inside a child's root (beside its own directory). */
export const LOG_DIR_NAME = "log";
/** Name of the file a child writes to. */
export const CURRENT_LOG_NAME = "current";
/** Most rotated files a child may keep. */
export const MAX_LOG_KEEP = 100;
/** Smallest rotation size (below this rotation would churn). */
export const MIN_LOG_ROTATE_BYTES = 1024;
/** Most bytes `tailChildLog` reads by default. */
export const DEFAULT_TAIL_MAX_BYTES = 1024 * 1024;
/** How often `followChildLog` looks for new bytes by default. */
export const DEFAULT_FOLLOW_POLL_MS = 200;
const READ_CHUNK_BYTES = 64 * 1024;

/** Where one child's log lives. */
export interface ChildLogPaths {
  /** `<childRoot>/log` (0700). */
  readonly dir: string;
  /** `<childRoot>/log/current` (0600): what the child writes to. */
  readonly current: string;
}

/** When and how much to rotate. */
export interface LogRotation {
  /** Rotate once `current` holds at least this many bytes. */
  readonly maxBytes: number;
  /** Rotated files kept (`current.1` newest ... `current.keep` oldest); 0 keeps none. */
  readonly keep: number;
}

/** 10 MiB per file, five old files. */
export const DEFAULT_LOG_ROTATION: LogRotation = { maxBytes: 10 * 1024 * 1024, keep: 5 };

/** Throw SupervisorConfigError unless `rotation` is usable. */
export function checkLogRotation(rotation: LogRotation): LogRotation {
  const { maxBytes, keep } = rotation;
  if (!Number.isSafeInteger(maxBytes) || maxBytes < MIN_LOG_ROTATE_BYTES)
    throw new SupervisorConfigError(
      `log rotation maxBytes must be a whole number of at least ${MIN_LOG_ROTATE_BYTES}, got ${maxBytes}`,
    );
  if (!Number.isSafeInteger(keep) || keep < 0 || keep > MAX_LOG_KEEP)
    throw new SupervisorConfigError(
      `log rotation keep must be a whole number 0..${MAX_LOG_KEEP}, got ${keep}`,
    );
  return { maxBytes, keep };
}

/** The log paths of the child whose root (the directory holding its own directory) is `childRoot`. */
export function childLogPaths(childRoot: string): ChildLogPaths {
  const dir = join(childRoot, LOG_DIR_NAME);
  return { dir, current: join(dir, CURRENT_LOG_NAME) };
}

/** Path of the `n`th rotated file (1 is the newest). */
export function rotatedLogPath(paths: ChildLogPaths, n: number): string {
  return `${paths.current}.${n}`;
}

/** Make `<childRoot>/log` (0700) and an empty `current` (0600) unless they exist. */
export async function prepareChildLog(childRoot: string): Promise<ChildLogPaths> {
  const paths = childLogPaths(childRoot);
  await mkdir(paths.dir, { recursive: true, mode: 0o700 });
  const fh = await open(paths.current, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT, 0o600);
  await fh.close();
  return paths;
}

/**
 * Open `logPath` for a child's stdout/stderr: write-only, O_APPEND, created 0600 if missing. Returns
 * a raw fd to pass in spawn's `stdio`; the caller closes its copy once the child has it.
 */
export function openChildLogFd(logPath: string): number {
  return openSync(logPath, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT, 0o600);
}

async function copyRange(
  from: FileHandle,
  to: FileHandle,
  startByte: number,
  endByte: number,
): Promise<number> {
  const buffer = Buffer.allocUnsafe(READ_CHUNK_BYTES);
  let position = startByte;
  while (position < endByte) {
    const { bytesRead } = await from.read(buffer, 0, Math.min(buffer.length, endByte - position), position);
    if (bytesRead === 0) break;
    await to.write(buffer, 0, bytesRead);
    position += bytesRead;
  }
  return position;
}

/**
 * Rotate the log if `current` has reached `rotation.maxBytes`. Resolves true when it rotated.
 * Missing files are not an error (a child that never wrote has nothing to rotate).
 */
export async function rotateChildLog(paths: ChildLogPaths, rotation: LogRotation): Promise<boolean> {
  let size: number;
  try {
    size = (await stat(paths.current)).size;
  } catch {
    return false;
  }
  if (size < rotation.maxBytes) return false;
  if (rotation.keep === 0) {
    await truncate(paths.current, 0);
    return true;
  }
  await rm(rotatedLogPath(paths, rotation.keep), { force: true });
  for (let n = rotation.keep - 1; n >= 1; n--)
    if (await exists(rotatedLogPath(paths, n)))
      await rename(rotatedLogPath(paths, n), rotatedLogPath(paths, n + 1));
  // Copy to a side file and rename it into place only after the collapse or truncate, so a follower
  // that sees a new current.1 knows `current` has already been cut.
  const partial = `${rotatedLogPath(paths, 1)}.partial`;
  const from = await open(paths.current, "r");
  const to = await open(partial, "w", 0o600);
  try {
    let copied = 0;
    const { size: now, blksize } = await from.stat();
    // Whole blocks, short of the end (a collapse may not reach the end of the file).
    const aligned = blksize > 0 && now > 0 ? Math.floor((now - 1) / blksize) * blksize : 0;
    if (aligned > 0) copied = await copyRange(from, to, 0, aligned);
    const collapsed = aligned > 0 && copied === aligned && (await collapseStart(paths.current, aligned));
    if (!collapsed) {
      for (;;) {
        const end = (await from.stat()).size;
        if (end <= copied) break;
        copied = await copyRange(from, to, copied, end);
      }
      await truncate(paths.current, 0);
    }
  } finally {
    await to.close();
    await from.close();
  }
  await rename(partial, rotatedLogPath(paths, 1));
  return true;
}

/**
 * Cut the first `bytes` (a multiple of the filesystem's block) out of the file at `path`, shifting
 * the rest to its start (fallocate --collapse-range). False where the filesystem or the system
 * cannot; the caller then truncates.
 */
export function collapseStart(path: string, bytes: number): Promise<boolean> {
  return new Promise((resolve) => {
    execFile(
      "fallocate",
      ["--collapse-range", "--offset", "0", "--length", String(bytes), path],
      { timeout: 10_000, env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" } },
      (err) => resolve(err === null),
    );
  });
}

/** The last `maxBytes` of a file, and whether that was all of it. */
async function readLastBytes(path: string, maxBytes: number): Promise<{ bytes: Buffer; whole: boolean }> {
  let fh: FileHandle;
  try {
    fh = await open(path, "r");
  } catch {
    return { bytes: Buffer.alloc(0), whole: true };
  }
  try {
    const size = (await fh.stat()).size;
    const length = Math.min(size, maxBytes);
    const buffer = Buffer.alloc(length);
    const { bytesRead } = await fh.read(buffer, 0, length, size - length);
    return { bytes: buffer.subarray(0, bytesRead), whole: length === size };
  } finally {
    await fh.close();
  }
}

function countNewlines(buffer: Buffer): number {
  let n = 0;
  for (let i = buffer.indexOf(10); i !== -1; i = buffer.indexOf(10, i + 1)) n++;
  return n;
}

/** Options of tailChildLog. */
export interface TailOptions {
  /** How many lines (default 100). */
  readonly lines?: number;
  /** Read at most this many bytes in all (default DEFAULT_TAIL_MAX_BYTES). */
  readonly maxBytes?: number;
}

/** The last `lines` lines of the child's output, reaching into rotated files when needed. */
export async function tailChildLog(paths: ChildLogPaths, options: TailOptions = {}): Promise<string> {
  const lines = options.lines ?? 100;
  let budget = options.maxBytes ?? DEFAULT_TAIL_MAX_BYTES;
  if (lines <= 0 || budget <= 0) return "";
  const parts: Buffer[] = [];
  let newlines = 0;
  let cutShort = false;
  for (let n = 0; n <= MAX_LOG_KEEP; n++) {
    const path = n === 0 ? paths.current : rotatedLogPath(paths, n);
    if (n > 0 && !(await exists(path))) break;
    if (budget <= 0) {
      cutShort = true;
      break;
    }
    const { bytes, whole } = await readLastBytes(path, budget);
    parts.unshift(bytes);
    budget -= bytes.length;
    newlines += countNewlines(bytes);
    cutShort = !whole;
    if (newlines > lines || cutShort) break;
  }
  let text = Buffer.concat(parts).toString("utf8");
  // Cut short by the byte budget: the first line read is only the end of a line; leave it out.
  if (cutShort && newlines <= lines) text = text.slice(text.indexOf("\n") + 1);
  const ended = text.endsWith("\n");
  const all = (ended ? text.slice(0, -1) : text).split("\n");
  return all.slice(-lines).join("\n") + (ended ? "\n" : "");
}

/** Options of followChildLog. */
export interface FollowOptions {
  /** Ends the iteration (the generator returns; it does not throw). */
  readonly signal?: AbortSignal;
  /** Start at the current end instead of the beginning (default true). */
  readonly fromEnd?: boolean;
  /** How often to look for new bytes (default DEFAULT_FOLLOW_POLL_MS). */
  readonly pollIntervalMs?: number;
}

/**
 * Yield what the child writes, as it is written, until `signal` aborts. On a rotation (a new
 * `current.1` appeared, or `current` got shorter) the rest of what was copied into `current.1` is
 * yielded first, then `current` from 0. Each chunk is at most DEFAULT_TAIL_MAX_BYTES.
 */
export async function* followChildLog(
  paths: ChildLogPaths,
  options: FollowOptions = {},
): AsyncGenerator<Buffer, void, undefined> {
  const pollMs = options.pollIntervalMs ?? DEFAULT_FOLLOW_POLL_MS;
  const signal = options.signal;
  const newest = rotatedLogPath(paths, 1);
  let offset = options.fromEnd === false ? 0 : await sizeOf(paths.current);
  let newestId = await fileId(newest);
  let shrunkPolls = 0;
  while (signal?.aborted !== true) {
    const id = await fileId(newest);
    const size = await sizeOf(paths.current);
    const rotated = id !== newestId && id !== "";
    newestId = id;
    if (rotated) {
      // current.1 is what was cut from the start of `current`: the rest of it after `offset`, then
      // `current` from where that left us (0 after a truncate; further on after a collapse that
      // cut less than we had read).
      for (let start = offset; ; ) {
        const missed = await readRange(newest, start, start + DEFAULT_TAIL_MAX_BYTES);
        if (missed.length === 0) break;
        start += missed.length;
        yield missed;
      }
      offset = Math.max(0, offset - (await sizeOf(newest)));
      shrunkPolls = 0;
      continue;
    }
    if (size < offset) {
      const why = await whyShorter(paths, newestId);
      if (why === "rotated") continue; // read on from current.1 first, at the top
      if (++shrunkPolls > SHRUNK_PATIENCE[why]) {
        offset = 0;
        shrunkPolls = 0;
        continue;
      }
    } else if (size > offset) {
      const chunk = await readRange(paths.current, offset, Math.min(size, offset + DEFAULT_TAIL_MAX_BYTES));
      offset += chunk.length;
      if (chunk.length > 0) yield chunk;
      continue;
    }
    try {
      await sleep(pollMs, undefined, { signal });
    } catch {
      return; // aborted
    }
  }
}
