/**
 * A writer of cpio archives in the "newc" format, the one Linux unpacks as an initramfs. Pure: entries
 * in, bytes out, with every timestamp and owner zero so the same entries always give the same archive.
 *
 * Each entry is a 110-byte ASCII header, the path with its NUL, padding to 4 bytes, the data and
 * padding to 4 bytes again; the archive ends with an entry named TRAILER!!!. The header is "070701"
 * and then thirteen 8-digit hexadecimal fields:
 *
 *   ino  mode  uid  gid  nlink  mtime  filesize  devmajor  devminor  rdevmajor  rdevminor  namesize  check
 *
 * (namesize counts the NUL; check is 0 for newc; a symlink's data is its target).
 */

/** One file, directory, symlink or character device of the archive. Paths are relative ("bin/sh"). */
export type CpioEntry =
  | { readonly kind: "dir"; readonly path: string; readonly mode?: number }
  | { readonly kind: "file"; readonly path: string; readonly data: Uint8Array; readonly mode?: number }
  | { readonly kind: "symlink"; readonly path: string; readonly target: string }
  | {
      readonly kind: "chardev";
      readonly path: string;
      readonly major: number;
      readonly minor: number;
      readonly mode?: number;
    };

/** Size of a newc header in bytes. */
export const CPIO_HEADER_BYTES = 110;
/** The newc magic. */
export const CPIO_NEWC_MAGIC = "070701";
/** Name of the last entry. */
export const CPIO_TRAILER = "TRAILER!!!";

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

const hex8 = (n: number) => {
  if (!Number.isSafeInteger(n) || n < 0 || n > 0xffff_ffff)
    throw new RangeError(`cpio field out of range: ${n}`);
  return n.toString(16).padStart(8, "0");
};
const pad4 = (n: number) => (4 - (n % 4)) % 4;

interface Fields {
  readonly ino: number;
  readonly mode: number;
  readonly nlink: number;
  readonly rdevMajor: number;
  readonly rdevMinor: number;
  readonly name: string;
  readonly data: Uint8Array;
}

function record(f: Fields): Buffer {
  const name = Buffer.from(`${f.name}\0`, "utf8");
  const header = [
    CPIO_NEWC_MAGIC,
    hex8(f.ino),
    hex8(f.mode),
    hex8(0), // uid
    hex8(0), // gid
    hex8(f.nlink),
    hex8(0), // mtime
    hex8(f.data.length),
    hex8(0), // devmajor
    hex8(0), // devminor
    hex8(f.rdevMajor),
    hex8(f.rdevMinor),
    hex8(name.length),
    hex8(0), // check
  ].join("");
  return Buffer.concat([
    Buffer.from(header, "ascii"),
    name,
    Buffer.alloc(pad4(CPIO_HEADER_BYTES + name.length)),
    f.data,
    Buffer.alloc(pad4(f.data.length)),
  ]);
}

/** The archive of `entries`, in the order given (parents must come before their children). */
export function cpioNewc(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  for (const e of entries) {
    if (e.path === "" || e.path.startsWith("/") || e.path.split("/").includes(".."))
      throw new RangeError(
        `cpio path must be relative and stay inside the archive: ${JSON.stringify(e.path)}`,
      );
    const base = { ino: ino++, name: e.path, rdevMajor: 0, rdevMinor: 0 };
    switch (e.kind) {
      case "dir":
        parts.push(record({ ...base, mode: S_IFDIR | (e.mode ?? 0o755), nlink: 2, data: new Uint8Array() }));
        break;
      case "file":
        parts.push(record({ ...base, mode: S_IFREG | (e.mode ?? 0o644), nlink: 1, data: e.data }));
        break;
      case "symlink":
        parts.push(record({ ...base, mode: S_IFLNK | 0o777, nlink: 1, data: Buffer.from(e.target, "utf8") }));
        break;
      case "chardev":
        parts.push(
          record({
            ...base,
            mode: S_IFCHR | (e.mode ?? 0o600),
            nlink: 1,
            rdevMajor: e.major,
            rdevMinor: e.minor,
            data: new Uint8Array(),
          }),
        );
        break;
    }
  }
  parts.push(
    record({
      ino: 0,
      mode: 0,
      nlink: 1,
      rdevMajor: 0,
      rdevMinor: 0,
      name: CPIO_TRAILER,
      data: new Uint8Array(),
    }),
  );
  return Buffer.concat(parts);
}
