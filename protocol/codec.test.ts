import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Reader, Writer } from "./codec.ts";
import {
  EncodeError,
  InvalidUtf8Error,
  LimitExceededError,
  TrailingBytesError,
  TruncatedError,
} from "./errors.ts";

describe("codec", () => {
  it("property: every field type round-trips, across buffer growth", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({ k: fc.constant("u8" as const), v: fc.nat(0xff) }),
            fc.record({ k: fc.constant("u16" as const), v: fc.nat(0xffff) }),
            fc.record({ k: fc.constant("u32" as const), v: fc.nat({ max: 0xffffffff }) }),
            fc.record({
              k: fc.constant("i32" as const),
              v: fc.integer({ min: -0x80000000, max: 0x7fffffff }),
            }),
            fc.record({ k: fc.constant("u64" as const), v: fc.nat({ max: Number.MAX_SAFE_INTEGER }) }),
            fc.record({ k: fc.constant("bytes" as const), v: fc.uint8Array({ maxLength: 40 }) }),
            fc.record({ k: fc.constant("string" as const), v: fc.string({ unit: "binary", maxLength: 20 }) }),
          ),
          { maxLength: 30 },
        ),
        (fields) => {
          const w = new Writer(1);
          for (const f of fields) {
            if (f.k === "bytes") w.bytes(f.v, 100);
            else if (f.k === "string") w.string(f.v, 100);
            else w[f.k](f.v);
          }
          const r = new Reader(w.finish());
          for (const f of fields) {
            if (f.k === "bytes") expect(r.bytes(100)).toEqual(f.v);
            else if (f.k === "string") expect(r.string(100)).toBe(f.v);
            else expect(r[f.k]()).toBe(f.v);
          }
          r.end();
        },
      ),
    );
  });

  it("checks limits before reading and refuses bad input with typed errors", () => {
    expect(() => new Reader(new Uint8Array([0, 0, 0, 9, 1])).bytes(8)).toThrow(LimitExceededError);
    expect(() => new Reader(new Uint8Array([0, 0, 0, 5, 1])).bytes(8)).toThrow(TruncatedError);
    expect(() => new Reader(new Uint8Array([0, 2, 0xc3, 0x28])).string(8)).toThrow(InvalidUtf8Error);
    expect(() => new Reader(new Uint8Array([0xff, 0xff, 0, 0, 0, 0, 0, 0])).u64()).toThrow(
      LimitExceededError,
    );
    expect(() => new Reader(new Uint8Array([0, 3, 1])).list(10, (r) => r.u8())).toThrow(TruncatedError);
    expect(() => new Reader(new Uint8Array([0, 11])).list(10, (r) => r.u8())).toThrow(LimitExceededError);
    expect(() => new Reader(new Uint8Array([1])).end()).toThrow(TrailingBytesError);
    expect(() => new Writer().u8(256)).toThrow(EncodeError);
    expect(() => new Writer().u64(-1)).toThrow(EncodeError);
    expect(() => new Writer().string("abc", 2)).toThrow(EncodeError);
    expect(() => new Writer().fixed(new Uint8Array(3), 4)).toThrow(EncodeError);
  });

  it("returns byte fields as views, not copies", () => {
    const buf = new Uint8Array([0, 0, 0, 2, 7, 8]);
    const b = new Reader(buf).bytes(4);
    expect(b.buffer).toBe(buf.buffer);
    expect(b.byteOffset).toBe(4);
  });
});
