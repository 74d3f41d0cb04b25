/**
 * A bounded big-endian Writer and Reader: the only way protocol/ turns values into bytes and back.
 *
 * The Reader never allocates past a limit: every declared length or count is checked against its
 * limit and against the bytes remaining BEFORE anything is sliced or allocated, and byte fields are
 * returned as views (subarray), not copies. Strings are decoded with a fatal UTF-8 decoder.
 *
 * Encodings: u8, u16, u32, i32 and u64 big-endian; u64 carries a safe integer (< 2^53).
 * `bytes` is u32 length + bytes; `string` is u16 byte length + UTF-8; `list` is u16 count + items.
 */
import {
  EncodeError,
  InvalidUtf8Error,
  LimitExceededError,
  TrailingBytesError,
  TruncatedError,
} from "./errors.ts";

/** Strings up to this many bytes are tried as plain ASCII first (see Reader.string). */
const ASCII_FAST_PATH_BYTES = 64;
const utf8Decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();

/** UTF-8 bytes of `s` (for callers that need the same encoding as the codec). */
export function utf8(s: string): Uint8Array {
  return utf8Encoder.encode(s);
}

/** A growable buffer that refuses to write values its Reader counterpart would refuse. */
export class Writer {
  private buf: Uint8Array;
  private view: DataView;
  private length = 0;

  /** `initialBytes` is a capacity hint; the buffer grows by doubling. */
  constructor(initialBytes = 256) {
    this.buf = new Uint8Array(initialBytes);
    this.view = new DataView(this.buf.buffer);
  }

  /** Grow if needed and return the offset of `n` new bytes. Callers must read `this.buf`/`this.view` after. */
  private reserve(n: number): number {
    const at = this.length;
    const need = at + n;
    if (need > this.buf.length) {
      let size = this.buf.length * 2;
      while (size < need) size *= 2;
      const next = new Uint8Array(size);
      next.set(this.buf.subarray(0, at));
      this.buf = next;
      this.view = new DataView(next.buffer);
    }
    this.length = need;
    return at;
  }

  /** Write an unsigned 8-bit integer. */
  u8(v: number): this {
    checkUint(v, 0xff, "u8");
    const at = this.reserve(1);
    this.view.setUint8(at, v);
    return this;
  }
  /** Write an unsigned 16-bit integer. */
  u16(v: number): this {
    checkUint(v, 0xffff, "u16");
    const at = this.reserve(2);
    this.view.setUint16(at, v);
    return this;
  }
  /** Write an unsigned 32-bit integer. */
  u32(v: number): this {
    checkUint(v, 0xffffffff, "u32");
    const at = this.reserve(4);
    this.view.setUint32(at, v);
    return this;
  }
  /** Write a signed 32-bit integer. */
  i32(v: number): this {
    if (!Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff)
      throw new EncodeError(`i32 out of range: ${v}`);
    const at = this.reserve(4);
    this.view.setInt32(at, v);
    return this;
  }
  /** Write a non-negative safe integer as an unsigned 64-bit integer. */
  u64(v: number): this {
    checkUint(v, Number.MAX_SAFE_INTEGER, "u64");
    const at = this.reserve(8);
    this.view.setUint32(at, Math.floor(v / 0x100000000));
    this.view.setUint32(at + 4, v >>> 0);
    return this;
  }
  /** Write exactly `length` bytes (a fixed-size field such as a key). */
  fixed(b: Uint8Array, length: number): this {
    if (b.length !== length) throw new EncodeError(`fixed field needs ${length} bytes, got ${b.length}`);
    const at = this.reserve(length);
    this.buf.set(b, at);
    return this;
  }
  /** Write u32 length + bytes; refuses more than `maxBytes`. */
  bytes(b: Uint8Array, maxBytes: number): this {
    if (b.length > maxBytes) throw new EncodeError(`bytes field of ${b.length} exceeds ${maxBytes}`);
    this.u32(b.length);
    const at = this.reserve(b.length);
    this.buf.set(b, at);
    return this;
  }
  /** Write u16 byte length + UTF-8; refuses more than `maxBytes` bytes. */
  string(s: string, maxBytes: number): this {
    const b = utf8Encoder.encode(s);
    if (b.length > maxBytes || b.length > 0xffff) {
      throw new EncodeError(`string of ${b.length} bytes exceeds ${maxBytes}`);
    }
    this.u16(b.length);
    const at = this.reserve(b.length);
    this.buf.set(b, at);
    return this;
  }
  /** Write u16 count + each item; refuses more than `maxItems`. */
  list<T>(items: readonly T[], maxItems: number, writeItem: (w: Writer, item: T) => void): this {
    if (items.length > maxItems || items.length > 0xffff) {
      throw new EncodeError(`list of ${items.length} exceeds ${maxItems}`);
    }
    this.u16(items.length);
    for (const item of items) writeItem(this, item);
    return this;
  }
  /** Bytes written so far (a view; copy it if the Writer is reused). */
  finish(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

function checkUint(v: number, max: number, what: string): void {
  if (!Number.isInteger(v) || v < 0 || v > max) throw new EncodeError(`${what} out of range: ${v}`);
}

/**
 * A cursor over received bytes; every read is bounded and throws a DecodeError subclass. Integers
 * are read byte by byte rather than through a DataView: one Reader is made per received payload, and
 * the DataView was most of what that cost.
 */
export class Reader {
  private offset = 0;

  constructor(private readonly buf: Uint8Array) {}

  /** Bytes not yet read. */
  remaining(): number {
    return this.buf.length - this.offset;
  }
  /** Current read position. */
  position(): number {
    return this.offset;
  }

  private take(n: number, what: string): number {
    if (n > this.buf.length - this.offset) {
      throw new TruncatedError(`${what}: need ${n} bytes, ${this.buf.length - this.offset} left`);
    }
    const at = this.offset;
    this.offset += n;
    return at;
  }

  /** Read an unsigned 8-bit integer. */
  u8(what = "u8"): number {
    return this.buf[this.take(1, what)]!;
  }
  /** Read an unsigned 16-bit integer. */
  u16(what = "u16"): number {
    const at = this.take(2, what);
    return (this.buf[at]! << 8) | this.buf[at + 1]!;
  }
  /** Read an unsigned 32-bit integer. */
  u32(what = "u32"): number {
    return this.int32(this.take(4, what)) >>> 0;
  }
  /** Read a signed 32-bit integer. */
  i32(what = "i32"): number {
    return this.int32(this.take(4, what));
  }
  /** Read an unsigned 64-bit integer; refuses values above Number.MAX_SAFE_INTEGER. */
  u64(what = "u64"): number {
    const at = this.take(8, what);
    const hi = this.int32(at) >>> 0;
    const lo = this.int32(at + 4) >>> 0;
    if (hi > 0x1fffff) throw new LimitExceededError(`${what}: u64 above 2^53`);
    return hi * 0x100000000 + lo;
  }
  /** The big-endian signed 32-bit integer at `at` (already taken). */
  private int32(at: number): number {
    const b = this.buf;
    return (b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!;
  }
  /** Read exactly `length` bytes, as a view. */
  fixed(length: number, what = "fixed"): Uint8Array {
    const at = this.take(length, what);
    return this.buf.subarray(at, at + length);
  }
  /** Read u32 length + bytes (a view); the length is checked against `maxBytes` first. */
  bytes(maxBytes: number, what = "bytes"): Uint8Array {
    const n = this.u32(what);
    if (n > maxBytes) throw new LimitExceededError(`${what}: ${n} bytes exceeds ${maxBytes}`);
    return this.fixed(n, what);
  }
  /** Read u16 byte length + UTF-8; refuses more than `maxBytes` bytes and invalid UTF-8. */
  string(maxBytes: number, what = "string"): string {
    const n = this.u16(what);
    if (n > maxBytes) throw new LimitExceededError(`${what}: ${n} bytes exceeds ${maxBytes}`);
    const at = this.take(n, what);
    // Short ASCII (topics, labels, addresses) is most of what arrives: decode it in place, without
    // a view or TextDecoder's per-call cost. Anything else goes through the strict decoder.
    if (n <= ASCII_FAST_PATH_BYTES) {
      const b = this.buf;
      let ascii = "";
      let i = at;
      for (; i < at + n; i++) {
        const c = b[i] as number;
        if (c >= 0x80) break;
        ascii += String.fromCharCode(c);
      }
      if (i === at + n) return ascii;
    }
    try {
      return utf8Decoder.decode(this.buf.subarray(at, at + n));
    } catch (cause) {
      throw new InvalidUtf8Error(`${what}: invalid UTF-8`, { cause });
    }
  }
  /**
   * Read u16 count + items. The count is checked against `maxItems` and against the bytes left
   * (each item takes at least `minItemBytes`) before the array is allocated.
   */
  list<T>(maxItems: number, readItem: (r: Reader) => T, minItemBytes = 1, what = "list"): T[] {
    const n = this.u16(what);
    if (n > maxItems) throw new LimitExceededError(`${what}: ${n} items exceeds ${maxItems}`);
    if (n * minItemBytes > this.remaining()) {
      throw new TruncatedError(`${what}: ${n} items cannot fit in ${this.remaining()} bytes`);
    }
    const out: T[] = [];
    for (let i = 0; i < n; i++) out.push(readItem(this));
    return out;
  }
  /** Throw TrailingBytesError unless every byte was read. */
  end(what = "input"): void {
    if (this.offset !== this.buf.length) {
      throw new TrailingBytesError(`${what}: ${this.buf.length - this.offset} trailing bytes`);
    }
  }
}
