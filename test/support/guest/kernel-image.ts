/**
 * Turning Debian's compressed kernel (bzImage) into the uncompressed ELF vmlinux, which qemu boots
 * directly through its PVH entry point. Under TCG the kernel's own decompressor is slow (about half
 * a second for the cloud kernel's 14 MB LZ4 payload), so the test guest ships the ELF when it can.
 * Pure: bytes in, bytes out.
 *
 * bzImage layout (Documentation/arch/x86/boot.rst): the setup header's `setup_sects` (0x1f1, 0 means
 * 4) gives the real-mode part's size, (setup_sects + 1) * 512 bytes; `payload_offset` (0x248) and
 * `payload_length` (0x24c) locate the compressed vmlinux within the protected-mode part after it.
 * The payload's first bytes say how it is compressed: 1f 8b (gzip) or 02 21 4c 18 (LZ4 legacy
 * frames, as `lz4 -l` writes them); the build appends the uncompressed size as 4 bytes LE.
 */
import { gunzipSync } from "node:zlib";

/** "HdrS" at 0x202 marks a bzImage setup header. */
const HDRS_MAGIC = 0x5372_6448;
const LZ4_LEGACY_MAGIC = 0x184c_2102;
/** Largest block of an LZ4 legacy frame, uncompressed. */
const LZ4_LEGACY_BLOCK_BYTES = 8 * 1024 * 1024;
/** The ELF note (name "Xen") whose presence lets qemu boot an ELF kernel at its 32-bit PVH entry. */
const XEN_ELFNOTE_PHYS32_ENTRY = 18;
const PT_NOTE = 4;

/** Decode one LZ4 block (the raw block format, no frame) into `out` at `at`; returns the new end. */
export function lz4DecodeBlock(src: Uint8Array, out: Uint8Array, at: number): number {
  let ip = 0;
  let op = at;
  const readLength = (n: number) => {
    let len = n;
    if (len === 15) {
      let b: number;
      do {
        b = src[ip++] as number;
        len += b;
      } while (b === 255 && ip < src.length);
    }
    return len;
  };
  while (ip < src.length) {
    const token = src[ip++] as number;
    const literals = readLength(token >> 4);
    if (ip + literals > src.length || op + literals > out.length)
      throw new RangeError("lz4: literals overrun");
    out.set(src.subarray(ip, ip + literals), op);
    ip += literals;
    op += literals;
    if (ip >= src.length) break; // the last sequence has literals only
    const offset = (src[ip] as number) | ((src[ip + 1] as number) << 8);
    ip += 2;
    const match = readLength(token & 15) + 4;
    if (offset === 0 || offset > op - at || op + match > out.length) throw new RangeError("lz4: bad match");
    if (offset >= match) out.copyWithin(op, op - offset, op - offset + match);
    else for (let i = 0; i < match; i++) out[op + i] = out[op - offset + i] as number; // overlapping: byte by byte
    op += match;
  }
  return op;
}

/** Decompress LZ4 legacy frames followed by the 4-byte uncompressed size the kernel build appends. */
export function lz4LegacyDecompress(data: Uint8Array): Buffer {
  const view = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (view.length < 8 || view.readUInt32LE(0) !== LZ4_LEGACY_MAGIC)
    throw new RangeError("not LZ4 legacy data");
  const size = view.readUInt32LE(view.length - 4);
  const out = Buffer.alloc(size);
  let op = 0;
  let ip = 4;
  while (ip + 4 <= view.length - 4) {
    const blockBytes = view.readUInt32LE(ip);
    ip += 4;
    if (blockBytes === LZ4_LEGACY_MAGIC) continue; // the next frame
    if (ip + blockBytes > view.length) throw new RangeError("lz4: block overruns the data");
    const before = op;
    op = lz4DecodeBlock(view.subarray(ip, ip + blockBytes), out, op);
    if (op - before > LZ4_LEGACY_BLOCK_BYTES) throw new RangeError("lz4: block larger than 8 MiB");
    ip += blockBytes;
  }
  if (op !== size) throw new RangeError(`lz4: decompressed ${op} bytes, the trailer says ${size}`);
  return out;
}

/** True when an ELF64 image has the note that lets qemu boot it through PVH. */
export function hasPvhNote(elf: Uint8Array): boolean {
  const b = Buffer.from(elf.buffer, elf.byteOffset, elf.byteLength);
  if (b.length < 64 || b.readUInt32BE(0) !== 0x7f45_4c46 || b[4] !== 2) return false;
  const phoff = Number(b.readBigUInt64LE(0x20));
  const phentsize = b.readUInt16LE(0x36);
  const phnum = b.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (ph + 56 > b.length || b.readUInt32LE(ph) !== PT_NOTE) continue;
    const start = Number(b.readBigUInt64LE(ph + 8));
    const end = Math.min(b.length, start + Number(b.readBigUInt64LE(ph + 32)));
    for (let at = start; at + 12 <= end; ) {
      const namesz = b.readUInt32LE(at);
      const descsz = b.readUInt32LE(at + 4);
      const type = b.readUInt32LE(at + 8);
      const name = b.toString("ascii", at + 12, at + 12 + Math.max(0, namesz - 1));
      if (name === "Xen" && type === XEN_ELFNOTE_PHYS32_ENTRY) return true;
      at += 12 + Math.ceil(namesz / 4) * 4 + Math.ceil(descsz / 4) * 4;
    }
  }
  return false;
}

/**
 * The uncompressed vmlinux inside a bzImage, if its payload is gzip or LZ4 legacy and the result is
 * an ELF qemu can boot by PVH; otherwise null (boot the bzImage as it is).
 */
export function extractVmlinux(bzImage: Uint8Array): Buffer | null {
  const b = Buffer.from(bzImage.buffer, bzImage.byteOffset, bzImage.byteLength);
  if (b.length < 0x250 || b.readUInt32LE(0x202) !== HDRS_MAGIC) return null;
  const setupSects = b[0x1f1] || 4;
  const offset = (setupSects + 1) * 512 + b.readUInt32LE(0x248);
  const length = b.readUInt32LE(0x24c);
  if (offset + length > b.length) return null;
  const payload = b.subarray(offset, offset + length);
  let elf: Buffer;
  if (payload[0] === 0x1f && payload[1] === 0x8b) elf = gunzipSync(payload);
  else if (payload.length >= 4 && payload.readUInt32LE(0) === LZ4_LEGACY_MAGIC)
    elf = lz4LegacyDecompress(payload);
  else return null;
  return hasPvhNote(elf) ? elf : null;
}
