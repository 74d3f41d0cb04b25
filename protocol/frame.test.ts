import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeEnvelope, sealEnvelope } from "./envelope.ts";
import {
  EnjinError,
  LimitExceededError,
  TrailingBytesError,
  TruncatedError,
  UnsupportedVersionError,
} from "./errors.ts";
import { decodeFrame, encodeFrame, frameSize } from "./frame.ts";
import { generateIdentity } from "./keys.ts";
import { MAX_FRAME_BYTES, MAX_FRAME_ITEMS, MAX_HOPS } from "./limits.ts";
import { MessageType } from "./types.ts";

const bob = generateIdentity(new Uint8Array(32).fill(0xb0));

describe("frame", () => {
  it("round-trips items as views and keeps hops outside the signature", () => {
    const e1 = sealEnvelope(bob, MessageType.Ping, new Uint8Array(36));
    const e2 = sealEnvelope(bob, MessageType.Broadcast, new Uint8Array(10));
    const frame = encodeFrame([
      { hops: 0, envelope: e1 },
      { hops: 5, envelope: e2 },
    ]);
    expect(frame.length).toBe(
      frameSize([
        { hops: 0, envelope: e1 },
        { hops: 5, envelope: e2 },
      ]),
    );
    const items = decodeFrame(frame);
    expect(items.map((i) => i.hops)).toEqual([0, 5]);
    expect(items[1]!.envelope).toEqual(e2);
    expect(items[1]!.envelope.buffer).toBe(frame.buffer);
    expect(decodeEnvelope(items[0]!.envelope).type).toBe(MessageType.Ping);
    expect(decodeFrame(encodeFrame([]))).toEqual([]);
  });

  it("rejects each malformation with its own error", () => {
    const frame = encodeFrame([{ hops: 1, envelope: new Uint8Array([1, 2, 3]) }]);
    expect(() => decodeFrame(frame.subarray(0, frame.length - 1))).toThrow(TruncatedError);
    expect(() => decodeFrame(new Uint8Array([...frame, 0]))).toThrow(TrailingBytesError);
    expect(() => decodeFrame(new Uint8Array([2, 0]))).toThrow(UnsupportedVersionError);
    expect(() => decodeFrame(new Uint8Array([1, MAX_FRAME_ITEMS + 1]))).toThrow(LimitExceededError);
    expect(() => decodeFrame(new Uint8Array([1, 1, MAX_HOPS + 1, 0, 0, 0, 0]))).toThrow(LimitExceededError);
    expect(() => decodeFrame(new Uint8Array([1, 1, 0, 0xff, 0xff, 0xff, 0xff]))).toThrow(LimitExceededError);
    expect(() => decodeFrame(new Uint8Array([1, 3, 0, 0, 0, 0]))).toThrow(TruncatedError);
    expect(() => decodeFrame(new Uint8Array(MAX_FRAME_BYTES + 1))).toThrow(LimitExceededError);
    expect(() => decodeFrame(new Uint8Array(0))).toThrow(TruncatedError);
    expect(() => encodeFrame([{ hops: MAX_HOPS + 1, envelope: new Uint8Array(1) }])).toThrow(EnjinError);
    const many = Array.from({ length: MAX_FRAME_ITEMS + 1 }, () => ({
      hops: 0,
      envelope: new Uint8Array(1),
    }));
    expect(() => encodeFrame(many)).toThrow(EnjinError);
  });

  const itemArb = fc.record({
    hops: fc.integer({ min: 0, max: MAX_HOPS }),
    envelope: fc.uint8Array({ maxLength: 300 }),
  });

  it("property: encode/decode round-trips", () => {
    fc.assert(
      fc.property(fc.array(itemArb, { maxLength: MAX_FRAME_ITEMS }), (items) => {
        const back = decodeFrame(encodeFrame(items));
        return (
          back.length === items.length &&
          back.every(
            (b, i) => b.hops === items[i]!.hops && Buffer.from(b.envelope).equals(items[i]!.envelope),
          )
        );
      }),
      { numRuns: 200 },
    );
  });

  it("property: random, truncated and bit-flipped frames decode or throw an EnjinError", () => {
    const check = (bytes: Uint8Array) => {
      try {
        decodeFrame(bytes);
      } catch (e) {
        if (!(e instanceof EnjinError)) throw e;
      }
    };
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (b) => check(b)),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.array(itemArb, { maxLength: 8 }), fc.nat(), fc.nat(), (items, cut, bit) => {
        const frame = encodeFrame(items);
        check(frame.subarray(0, cut % (frame.length + 1)));
        const flipped = frame.slice();
        const at = bit % (frame.length * 8);
        flipped[at >>> 3]! ^= 1 << (at & 7);
        check(flipped);
      }),
      { numRuns: 500 },
    );
  });
});
