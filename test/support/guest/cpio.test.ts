import { describe, expect, it } from "vitest";
import { CPIO_HEADER_BYTES, CPIO_TRAILER, cpioNewc } from "./cpio.ts";

/** Read the archive back: each entry's header fields, name and data. */
function parse(archive: Buffer) {
  const out: { fields: number[]; name: string; data: Buffer }[] = [];
  let at = 0;
  for (;;) {
    expect(archive.toString("ascii", at, at + 6)).toBe("070701");
    const fields = Array.from({ length: 13 }, (_, i) =>
      Number.parseInt(archive.toString("ascii", at + 6 + i * 8, at + 14 + i * 8), 16),
    );
    const nameSize = fields[11] as number;
    const name = archive.toString("utf8", at + CPIO_HEADER_BYTES, at + CPIO_HEADER_BYTES + nameSize - 1);
    expect(archive[at + CPIO_HEADER_BYTES + nameSize - 1]).toBe(0);
    at += CPIO_HEADER_BYTES + nameSize;
    at += (4 - (at % 4)) % 4;
    const size = fields[6] as number;
    const data = archive.subarray(at, at + size);
    at += size;
    at += (4 - (at % 4)) % 4;
    out.push({ fields, name, data });
    if (name === CPIO_TRAILER) break;
  }
  expect(at).toBe(archive.length);
  return out;
}

describe("cpioNewc", () => {
  it("writes the golden bytes of one directory entry and the trailer", () => {
    const archive = cpioNewc([{ kind: "dir", path: "bin" }]);
    // magic, ino 1, mode 040755, uid 0, gid 0, nlink 2, mtime 0, size 0, dev 0:0, rdev 0:0, namesize 4, check 0
    const header =
      "070701" +
      "00000001" +
      "000041ed" +
      "00000000" +
      "00000000" +
      "00000002" +
      "00000000" +
      "00000000" +
      "00000000" +
      "00000000" +
      "00000000" +
      "00000000" +
      "00000004" +
      "00000000";
    expect(archive.toString("latin1", 0, 110)).toBe(header);
    // "bin\0" ends at 114; two NULs pad the entry to 116, where the trailer's header starts.
    expect(archive.toString("latin1", 110, 116)).toBe("bin\0\0\0");
    expect(archive.toString("latin1", 116, 122)).toBe("070701");
  });

  it("round-trips files, symlinks and device nodes with their modes, sizes and padding", () => {
    const archive = cpioNewc([
      { kind: "dir", path: "dev" },
      { kind: "chardev", path: "dev/console", major: 5, minor: 1 },
      { kind: "file", path: "init", data: Buffer.from("#!/bin/sh\n"), mode: 0o755 },
      { kind: "symlink", path: "sh", target: "busybox" },
      { kind: "file", path: "odd", data: Buffer.from("abcde") },
    ]);
    const entries = parse(archive);
    expect(entries.map((e) => e.name)).toEqual(["dev", "dev/console", "init", "sh", "odd", CPIO_TRAILER]);
    const [, dev, init, sh, odd] = entries;
    expect(dev?.fields[1]).toBe(0o020600);
    expect([dev?.fields[9], dev?.fields[10]]).toEqual([5, 1]);
    expect(init?.fields[1]).toBe(0o100755);
    expect(init?.data.toString()).toBe("#!/bin/sh\n");
    expect(sh?.fields[1]).toBe(0o120777);
    expect(sh?.data.toString()).toBe("busybox");
    expect(odd?.fields[1]).toBe(0o100644);
    expect(odd?.data.toString()).toBe("abcde");
    expect(new Set(entries.slice(0, -1).map((e) => e.fields[0])).size).toBe(5); // distinct inodes
  });

  it("is deterministic", () => {
    const entries = [{ kind: "file" as const, path: "a", data: Buffer.from("x") }];
    expect(cpioNewc(entries).equals(cpioNewc(entries))).toBe(true);
  });

  it.each(["/abs", "a/../../b", ""])("refuses the path %j", (path) => {
    expect(() => cpioNewc([{ kind: "dir", path }])).toThrow(RangeError);
  });
});
