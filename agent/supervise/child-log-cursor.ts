/**
 * Reading a child's log on from where the last read stopped, holding nothing open between reads:
 * `ringctl child logs --follow` asks a node again and again through the mesh, and each answer hands
 * back the cursor for the next question. The stateless twin of followChildLog (child-log.ts).
 */
import { type ChildLogPaths, rotatedLogPath } from "./child-log.ts";
import { fileId, readRange, SHRUNK_PATIENCE, sizeOf, whyShorter } from "./child-log-files.ts";

/**
 * Where a reader stopped in a child's log, for reading on later without holding anything open
 * (`ringctl child logs --follow` asks again with it): the byte offset in `current`, and which
 * `current.1` existed then, so a rotation since is noticed and the rest of the old `current` is read
 * from `current.1` first. JSON-encodable; a reader gets it back from every read.
 */
export interface LogCursor {
  /** Offset in `current` (or, while catching up after a rotation, in `current.1`). */
  readonly offsetBytes: number;
  /** fileId() of `current.1` when the cursor was made ("" when there was none). */
  readonly rotatedId: string;
  /** Reads in a row that found `current` shorter than the offset with no new `current.1`. */
  readonly shrunkReads: number;
}

/** The cursor at the end of a child's log as it is now (what a follower starts from). */
export async function logCursorAtEnd(paths: ChildLogPaths): Promise<LogCursor> {
  return {
    offsetBytes: await sizeOf(paths.current),
    rotatedId: await fileId(rotatedLogPath(paths, 1)),
    shrunkReads: 0,
  };
}

/**
 * Up to `maxBytes` written since `cursor`, and the cursor to read on from. The stateless twin of
 * followChildLog: after a rotation the rest of `current.1` comes first, then `current` from where
 * `current.1` ends (child-log.ts: 0 after a truncate, further after a collapse). Bytes
 * written while two rotations passed between reads are lost (the reader was too slow).
 */
export async function readChildLogSince(
  paths: ChildLogPaths,
  cursor: LogCursor,
  maxBytes: number,
): Promise<{ bytes: Buffer; cursor: LogCursor }> {
  const newest = rotatedLogPath(paths, 1);
  const id = await fileId(newest);
  const parts: Buffer[] = [];
  let budget = Math.max(4, maxBytes); // room for any one UTF-8 character
  let { offsetBytes, shrunkReads } = cursor;
  if (id !== cursor.rotatedId && id !== "") {
    const missed = await readRange(newest, offsetBytes, offsetBytes + budget);
    if (missed.length === budget) {
      const whole = missed.subarray(0, completeUtf8Bytes(missed));
      return { bytes: whole, cursor: { ...cursor, offsetBytes: offsetBytes + whole.length } };
    }
    parts.push(missed);
    budget -= missed.length;
    // `current` now starts where current.1 ends (0 after a truncate; a collapse may cut less).
    offsetBytes = Math.max(0, offsetBytes - (await sizeOf(newest)));
    shrunkReads = 0;
  }
  const size = await sizeOf(paths.current);
  if (size < offsetBytes) {
    const why = await whyShorter(paths, id);
    // Rotated just now: the next read takes the rest from the new current.1 (its id differs).
    if (why === "rotated") return { bytes: Buffer.concat(parts), cursor: { ...cursor, shrunkReads: 0 } };
    if (shrunkReads + 1 <= SHRUNK_PATIENCE[why])
      return {
        bytes: Buffer.concat(parts),
        cursor: { offsetBytes, rotatedId: id, shrunkReads: shrunkReads + 1 },
      };
    offsetBytes = 0;
  }
  const read = await readRange(paths.current, offsetBytes, offsetBytes + budget);
  // A character cut by the budget or caught mid-write is left for the next read.
  const fresh = read.subarray(0, completeUtf8Bytes(read));
  parts.push(fresh);
  return {
    bytes: Buffer.concat(parts),
    cursor: { offsetBytes: offsetBytes + fresh.length, rotatedId: id, shrunkReads: 0 },
  };
}

/** Length of `bytes` without a UTF-8 sequence cut short at its end (at most 3 bytes are left out). */
export function completeUtf8Bytes(bytes: Uint8Array): number {
  for (let back = 1; back <= Math.min(3, bytes.length); back++) {
    const b = bytes[bytes.length - back]!;
    if ((b & 0xc0) === 0x80) continue; // a continuation byte: look further back for its lead
    const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    return need > back ? bytes.length - back : bytes.length;
  }
  return bytes.length;
}
