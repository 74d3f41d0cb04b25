/**
 * Small file reads the log readers share (child-log.ts follows a log, child-log-cursor.ts reads on
 * from a cursor): a file's identity, size and byte ranges, and why `current` got shorter than where a
 * reader was — which is how a reader tells a rotation under way from one just done, or from a
 * truncate, without any lock between the rotating agent and its readers.
 */
import { type FileHandle, open, stat } from "node:fs/promises";
import type { ChildLogPaths } from "./child-log.ts";

/** Polls a reader waits on a shorter `current` truncated by hand before it starts over at 0. */
export const FOLLOW_SHRUNK_POLLS = 5;

/** True when `path` exists. */
export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Why `current` is shorter than a reader's offset: a rotation under way (its copy, current.1.partial,
 * is not in place yet), one that has just finished (current.1 is not the one the reader knew), a
 * truncate that kept no copy (no current.1 at all: start over), or a truncate by hand.
 */
export async function whyShorter(
  paths: ChildLogPaths,
  knownRotatedId: string,
): Promise<"rotating" | "rotated" | "copyless" | "by-hand"> {
  const newest = `${paths.current}.1`;
  if (await exists(`${newest}.partial`)) return "rotating";
  const id = await fileId(newest);
  if (id !== knownRotatedId && id !== "") return "rotated";
  return id === "" ? "copyless" : "by-hand";
}

/** Polls a reader waits on a shorter `current`, by why, before it starts over at 0. */
export const SHRUNK_PATIENCE = {
  rotating: FOLLOW_SHRUNK_POLLS * 20, // a copy left by an agent that died mid-rotation ends the wait
  copyless: 0,
  "by-hand": FOLLOW_SHRUNK_POLLS,
} as const;

/** Identity of a file's content version: inode, mtime and size; "" when it does not exist. */
export async function fileId(path: string): Promise<string> {
  try {
    const s = await stat(path, { bigint: true });
    return `${s.ino}:${s.mtimeNs}:${s.size}`;
  } catch {
    return "";
  }
}

/** Size of `path` in bytes; 0 when it does not exist. */
export async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

/** Bytes `startByte` up to `endByte` (or the end) of `path`; empty when it does not exist. */
export async function readRange(path: string, startByte: number, endByte?: number): Promise<Buffer> {
  let fh: FileHandle;
  try {
    fh = await open(path, "r");
  } catch {
    return Buffer.alloc(0);
  }
  try {
    const end = Math.min(endByte ?? Number.POSITIVE_INFINITY, (await fh.stat()).size);
    if (end <= startByte) return Buffer.alloc(0);
    const buffer = Buffer.alloc(end - startByte);
    const { bytesRead } = await fh.read(buffer, 0, buffer.length, startByte);
    return buffer.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}
