import { spawn } from "node:child_process";
import { closeSync } from "node:fs";
import { appendFile, mkdtemp, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { eventually } from "../../test/support/eventually.ts";
import {
  type ChildLogPaths,
  checkLogRotation,
  collapseStart,
  followChildLog,
  openChildLogFd,
  prepareChildLog,
  rotateChildLog,
  rotatedLogPath,
  tailChildLog,
} from "./child-log.ts";
import { type LogCursor, logCursorAtEnd, readChildLogSince } from "./child-log-cursor.ts";
import { SupervisorConfigError } from "./errors.ts";

let dir: string;
let paths: ChildLogPaths;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "enjin-child-log-"));
  paths = await prepareChildLog(dir);
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const lines = (from: number, to: number) =>
  Array.from({ length: to - from }, (_, i) => `line-${from + i}\n`).join("");

/** Whether the filesystem of `dir` lets a file's first block be cut out (ext4, xfs: yes; tmpfs: no). */
async function canCollapse(dir: string): Promise<boolean> {
  const probe = join(dir, "collapse-probe");
  const { blksize } = await stat(dir);
  await writeFile(probe, Buffer.alloc(2 * blksize, 1));
  try {
    return await collapseStart(probe, blksize);
  } finally {
    await rm(probe, { force: true });
  }
}

describe("child log", () => {
  it("prepares log/ (0700) and current (0600), keeping what is already there", async () => {
    expect((await stat(paths.dir)).mode & 0o777).toBe(0o700);
    expect((await stat(paths.current)).mode & 0o777).toBe(0o600);
    await appendFile(paths.current, "kept\n");
    await prepareChildLog(dir);
    expect(await readFile(paths.current, "utf8")).toBe("kept\n");
  });

  it("rotates by size, keeping `keep` old files, newest first", async () => {
    const rotation = { maxBytes: 1024, keep: 2 };
    await writeFile(paths.current, "x".repeat(100));
    expect(await rotateChildLog(paths, rotation)).toBe(false);
    for (let round = 1; round <= 4; round++) {
      await writeFile(paths.current, `round-${round}\n`.repeat(200));
      expect(await rotateChildLog(paths, rotation)).toBe(true);
      expect((await stat(paths.current)).size).toBe(0);
    }
    expect((await readFile(rotatedLogPath(paths, 1), "utf8")).startsWith("round-4\n")).toBe(true);
    expect((await readFile(rotatedLogPath(paths, 2), "utf8")).startsWith("round-3\n")).toBe(true);
    await expect(stat(rotatedLogPath(paths, 3))).rejects.toThrow(/ENOENT/);
    await expect(stat(`${rotatedLogPath(paths, 1)}.partial`)).rejects.toThrow(/ENOENT/);
  });

  it("keep 0 truncates without keeping anything", async () => {
    await writeFile(paths.current, "y".repeat(2048));
    expect(await rotateChildLog(paths, { maxBytes: 1024, keep: 0 })).toBe(true);
    expect((await stat(paths.current)).size).toBe(0);
    await expect(stat(rotatedLogPath(paths, 1))).rejects.toThrow(/ENOENT/);
  });

  it("a real child writing through an O_APPEND fd keeps writing across rotations, in order, with no hole", async () => {
    const fd = openChildLogFd(paths.current);
    const child = spawn(
      "/bin/sh",
      ["-c", 'i=0; while [ $i -lt 20000 ]; do echo "line-$i"; i=$((i+1)); done'],
      {
        stdio: ["ignore", fd, fd],
      },
    );
    closeSync(fd);
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    let rotations = 0;
    let done = false;
    void exited.then(() => {
      done = true;
    });
    while (!done) if (await rotateChildLog(paths, { maxBytes: 4096, keep: 100 })) rotations++;
    expect(await exited).toBe(0);
    expect(rotations).toBeGreaterThanOrEqual(1);

    const files: string[] = [];
    for (let n = 100; n >= 1; n--) {
      const text = await readFile(rotatedLogPath(paths, n), "utf8").catch(() => undefined);
      if (text !== undefined) files.push(text);
    }
    files.push(await readFile(paths.current, "utf8"));
    const all = files.join("");
    expect(all.includes("\0")).toBe(false); // a non-append writer would leave a hole of NULs
    const numbers = all
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => {
        expect(l).toMatch(/^line-\d+$/);
        return Number(l.slice(5));
      });
    for (let i = 1; i < numbers.length; i++) expect(numbers[i]).toBeGreaterThan(numbers[i - 1]!);
    expect(numbers.at(-1)).toBe(19_999);
    const gaps = numbers.filter((n, i) => i > 0 && n !== numbers[i - 1]! + 1).length;
    if (await canCollapse(dirname(paths.current))) {
      // The start was cut out of `current` (collapse-range): nothing written meanwhile is lost.
      expect(gaps).toBe(0);
      expect(numbers.length).toBe(20_000);
    } else {
      // copytruncate may drop what is written between the last copied byte and the truncate, so
      // lines go missing only there: at most one run of missing lines per rotation (how many
      // depends on the machine's speed, which a test must not assert on).
      expect(gaps).toBeLessThanOrEqual(rotations);
    }
  });

  it("tail reads the last lines, reaching into rotated files", async () => {
    await writeFile(rotatedLogPath(paths, 2), lines(0, 10));
    await writeFile(rotatedLogPath(paths, 1), lines(10, 20));
    await writeFile(paths.current, lines(20, 23));
    expect(await tailChildLog(paths, { lines: 2 })).toBe(lines(21, 23));
    expect(await tailChildLog(paths, { lines: 5 })).toBe(lines(18, 23));
    expect(await tailChildLog(paths, { lines: 15 })).toBe(lines(8, 23));
    expect(await tailChildLog(paths, { lines: 1000 })).toBe(lines(0, 23));
    expect(await tailChildLog(paths, { lines: 0 })).toBe("");
    // Bounded by bytes: 10 bytes reach only the end of the last line.
    expect(await tailChildLog(paths, { lines: 5, maxBytes: 10 })).toBe("line-22\n");
  });

  it("follow yields new output as it is written and carries on across a rotation", async () => {
    await writeFile(paths.current, "before\n".repeat(300));
    const abort = new AbortController();
    const received: string[] = [];
    const following = (async () => {
      for await (const chunk of followChildLog(paths, { signal: abort.signal, pollIntervalMs: 10 }))
        received.push(chunk.toString("utf8"));
    })();
    await new Promise((r) => setTimeout(r, 50)); // let the follower take its starting offset
    await appendFile(paths.current, "one\n");
    await eventually(() => expect(received.join("")).toBe("one\n"));
    await appendFile(paths.current, "two\n");
    expect(await rotateChildLog(paths, { maxBytes: 1024, keep: 3 })).toBe(true);
    await appendFile(paths.current, "three\n");
    await eventually(() => expect(received.join("")).toBe("one\ntwo\nthree\n"));
    abort.abort();
    await following;
  });

  it("refuses an unusable rotation with SupervisorConfigError", () => {
    expect(() => checkLogRotation({ maxBytes: 10, keep: 1 })).toThrow(SupervisorConfigError);
    expect(() => checkLogRotation({ maxBytes: 4096, keep: -1 })).toThrow(/keep must be a whole number/);
    expect(checkLogRotation({ maxBytes: 4096, keep: 0 })).toEqual({ maxBytes: 4096, keep: 0 });
  });

  it("reads on from a cursor, one request at a time, across rotations and in bounded pieces", async () => {
    await writeFile(paths.current, "old\n".repeat(300));
    let cursor: LogCursor = await logCursorAtEnd(paths);
    const read = async (maxBytes = 1 << 20) => {
      const r = await readChildLogSince(paths, cursor, maxBytes);
      cursor = r.cursor;
      return r.bytes.toString("utf8");
    };
    expect(await read()).toBe(""); // nothing new since the end
    await appendFile(paths.current, "one\n");
    expect(await read()).toBe("one\n");
    // Rotated between two reads: the rest of the old `current` comes from current.1, then the new one.
    await appendFile(paths.current, "two\n");
    expect(await rotateChildLog(paths, { maxBytes: 1024, keep: 2 })).toBe(true);
    await appendFile(paths.current, "three\n");
    expect(await read()).toBe("two\nthree\n");
    // A small budget hands it out in pieces, resuming where the last piece ended, after a rotation too.
    await appendFile(paths.current, "four\n");
    await appendFile(paths.current, "x".repeat(1100));
    expect(await rotateChildLog(paths, { maxBytes: 1024, keep: 2 })).toBe(true);
    await appendFile(paths.current, "five\n");
    let all = "";
    for (let i = 0; i < 20; i++) all += await read(400);
    expect(all).toBe(`four\n${"x".repeat(1100)}five\n`);
    // Truncated with no copy kept: starts over at 0.
    await writeFile(paths.current, "");
    await appendFile(paths.current, "six\n");
    await rm(rotatedLogPath(paths, 1));
    expect(await read()).toBe("six\n");
  });

  it("never splits a UTF-8 character between two reads (4 bytes hold any one)", async () => {
    let cursor = await logCursorAtEnd(paths);
    await appendFile(paths.current, "aé€😀\n"); // 1 + 2 + 3 + 4 + 1 bytes
    let text = "";
    for (let i = 0; i < 12; i++) {
      const r = await readChildLogSince(paths, cursor, 4);
      cursor = r.cursor;
      text += r.bytes.toString("utf8");
      expect(r.bytes.toString("utf8")).not.toContain("\ufffd");
    }
    expect(text).toBe("aé€😀\n");
  });

  it("waits out a rotation caught half-way (current truncated, its copy not yet renamed), reading nothing twice", async () => {
    await writeFile(paths.current, "a\n".repeat(600));
    let cursor = await logCursorAtEnd(paths);
    const abort = new AbortController();
    const followed: string[] = [];
    const following = (async () => {
      for await (const chunk of followChildLog(paths, { signal: abort.signal, pollIntervalMs: 10 }))
        followed.push(chunk.toString("utf8"));
    })();
    await new Promise((r) => setTimeout(r, 50)); // the follower takes its offset at the end
    // rotateChildLog's middle state, held: the copy in current.1.partial, `current` already empty.
    await appendFile(paths.current, "b\n");
    const partial = `${rotatedLogPath(paths, 1)}.partial`;
    await writeFile(partial, await readFile(paths.current));
    await writeFile(paths.current, "");
    for (let i = 0; i < 8; i++) {
      const r = await readChildLogSince(paths, cursor, 1 << 20);
      expect(r.bytes.toString()).toBe("");
      cursor = r.cursor;
    }
    await new Promise((r) => setTimeout(r, 150)); // the follower polls a dozen times meanwhile
    await rename(partial, rotatedLogPath(paths, 1));
    await appendFile(paths.current, "c\n");
    let read = "";
    for (let i = 0; i < 3; i++) {
      const r = await readChildLogSince(paths, cursor, 1 << 20);
      read += r.bytes.toString();
      cursor = r.cursor;
    }
    expect(read).toBe("b\nc\n");
    await eventually(() => expect(followed.join("")).toBe("b\nc\n"));
    abort.abort();
    await following;
  });
});
