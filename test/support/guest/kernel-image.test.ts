import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { extractVmlinux, hasPvhNote, lz4DecodeBlock, lz4LegacyDecompress } from "./kernel-image.ts";

/** A minimal ELF64 with one PT_NOTE segment holding one note of `name` and `type`. */
function elfWithNote(name: string, type: number): Buffer {
  const nameBytes = Buffer.from(`${name}\0`);
  const note = Buffer.alloc(12 + Math.ceil(nameBytes.length / 4) * 4 + 4);
  note.writeUInt32LE(nameBytes.length, 0);
  note.writeUInt32LE(4, 4); // descsz
  note.writeUInt32LE(type, 8);
  nameBytes.copy(note, 12);
  const elf = Buffer.alloc(64 + 56 + note.length);
  elf.writeUInt32BE(0x7f454c46, 0);
  elf[4] = 2; // ELFCLASS64
  elf.writeBigUInt64LE(64n, 0x20); // e_phoff
  elf.writeUInt16LE(56, 0x36); // e_phentsize
  elf.writeUInt16LE(1, 0x38); // e_phnum
  elf.writeUInt32LE(4, 64); // p_type PT_NOTE
  elf.writeBigUInt64LE(120n, 64 + 8); // p_offset
  elf.writeBigUInt64LE(BigInt(note.length), 64 + 32); // p_filesz
  note.copy(elf, 120);
  return elf;
}

/** A bzImage-shaped buffer: setup header fields and `payload` after (setup_sects + 1) * 512 bytes. */
function bzImage(payload: Buffer): Buffer {
  const setupSects = 2;
  const head = Buffer.alloc((setupSects + 1) * 512 + 16);
  head[0x1f1] = setupSects;
  head.writeUInt32LE(0x53726448, 0x202); // "HdrS"
  head.writeUInt32LE(16, 0x248); // payload_offset, from the protected-mode part
  head.writeUInt32LE(payload.length, 0x24c);
  return Buffer.concat([head, payload, Buffer.alloc(100)]);
}

describe("lz4DecodeBlock", () => {
  it("copies literals and overlapping matches", () => {
    // token 0x35: 3 literals "abc", then a match at offset 3 of 5 + 4 = 9 bytes; then 1 literal "!".
    const block = Buffer.from([0x35, 0x61, 0x62, 0x63, 0x03, 0x00, 0x10, 0x21]);
    const out = Buffer.alloc(13);
    expect(lz4DecodeBlock(block, out, 0)).toBe(13);
    expect(out.toString()).toBe("abcabcabcabc!");
  });

  it("reads long literal lengths (15 + 255 + ...)", () => {
    const literals = Buffer.alloc(15 + 255 + 3, 0x78);
    const block = Buffer.concat([Buffer.from([0xf0, 255, 3]), literals]);
    const out = Buffer.alloc(literals.length);
    expect(lz4DecodeBlock(block, out, 0)).toBe(literals.length);
    expect(out.equals(literals)).toBe(true);
  });

  it("refuses a match reaching before the output", () => {
    expect(() => lz4DecodeBlock(Buffer.from([0x10, 0x61, 0x05, 0x00]), Buffer.alloc(16), 0)).toThrow(
      /bad match/,
    );
  });
});

describe("lz4LegacyDecompress", () => {
  it("decodes frames of blocks and checks the appended size", () => {
    const block = Buffer.from([0x35, 0x61, 0x62, 0x63, 0x03, 0x00, 0x10, 0x21]);
    const frame = Buffer.alloc(4 + 4 + block.length + 4);
    frame.writeUInt32LE(0x184c2102, 0);
    frame.writeUInt32LE(block.length, 4);
    block.copy(frame, 8);
    frame.writeUInt32LE(13, 8 + block.length);
    expect(lz4LegacyDecompress(frame).toString()).toBe("abcabcabcabc!");
    frame.writeUInt32LE(14, 8 + block.length);
    expect(() => lz4LegacyDecompress(frame)).toThrow(/trailer says 14/);
  });
});

describe("hasPvhNote", () => {
  it("finds the Xen PHYS32_ENTRY note and nothing else", () => {
    expect(hasPvhNote(elfWithNote("Xen", 18))).toBe(true);
    expect(hasPvhNote(elfWithNote("Xen", 6))).toBe(false);
    expect(hasPvhNote(elfWithNote("GNU", 18))).toBe(false);
    expect(
      hasPvhNote(Buffer.from("not an elf at all, just some bytes, more than sixty-four of them...")),
    ).toBe(false);
  });
});

describe("extractVmlinux", () => {
  it("unpacks a gzip payload that is a PVH-bootable ELF", () => {
    const elf = elfWithNote("Xen", 18);
    expect(extractVmlinux(bzImage(gzipSync(elf)))?.equals(elf)).toBe(true);
  });

  it("gives null when the ELF cannot boot by PVH, the compression is unknown, or it is no bzImage", () => {
    expect(extractVmlinux(bzImage(gzipSync(elfWithNote("Xen", 6))))).toBeNull();
    expect(extractVmlinux(bzImage(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 1, 2])))).toBeNull(); // xz
    expect(extractVmlinux(Buffer.alloc(4096))).toBeNull();
  });
});
