import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { payloadArbs } from "./arbitraries.test-support.ts";
import { EncodeError, EnjinError, SchemaError, TrailingBytesError, TruncatedError } from "./errors.ts";
import { decodeAnyPayload, decodePayload, encodePayload } from "./messages.ts";
import { MessageType } from "./types.ts";

const types = Object.values(MessageType);

/** Structural equality that treats Uint8Array views by content. */
function normalize(x: unknown): unknown {
  if (x instanceof Uint8Array) return Array.from(x);
  if (Array.isArray(x)) return x.map(normalize);
  if (x !== null && typeof x === "object") {
    return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, normalize(v)]));
  }
  return x;
}

function decodesOrEnjinError(type: MessageType, bytes: Uint8Array): void {
  try {
    decodePayload(type, bytes);
  } catch (e) {
    if (!(e instanceof EnjinError)) throw e;
  }
}

describe("payload codecs", () => {
  for (const type of types) {
    it(`property: type ${type} round-trips and survives mangling`, () => {
      fc.assert(
        fc.property(payloadArbs[type], fc.nat(), fc.nat(), (value, cut, bit) => {
          const bytes = encodePayload(type, value as never);
          expect(normalize(decodePayload(type, bytes))).toEqual(normalize(value));
          decodesOrEnjinError(type, bytes.subarray(0, cut % (bytes.length + 1)));
          if (bytes.length > 0) {
            const flipped = bytes.slice();
            const at = bit % (bytes.length * 8);
            flipped[at >>> 3]! ^= 1 << (at & 7);
            decodesOrEnjinError(type, flipped);
          }
          expect(() => decodePayload(type, new Uint8Array([...bytes, 0]))).toThrow(TrailingBytesError);
        }),
        { numRuns: 100 },
      );
    });
  }

  it("property: random bytes decode or throw an EnjinError for every type", () => {
    fc.assert(
      fc.property(fc.constantFrom(...types), fc.uint8Array({ maxLength: 300 }), (type, bytes) => {
        decodesOrEnjinError(type, bytes);
      }),
      { numRuns: 3000 },
    );
  });

  it("refuses a huge declared list count before allocating", () => {
    // Digest: u16 count 0xffff with no bytes behind it.
    expect(() => decodePayload(MessageType.Digest, new Uint8Array([0x03, 0xff]))).toThrow(EnjinError);
    expect(() => decodePayload(MessageType.Digest, new Uint8Array([0x00, 0x05, 1, 2]))).toThrow(
      TruncatedError,
    );
  });

  it("applies the schema after decoding", () => {
    const cert = {
      subject: new Uint8Array(32),
      issuer: new Uint8Array(32).fill(1),
      ring: 1 as const,
      roles: ["node" as const],
      compartment: ["eu", "dc1"],
      tiers: ["web"],
      serial: 1,
      notBeforeMs: 1000,
      expiresMs: 2000,
    };
    const bytes = encodePayload(MessageType.Announce, cert);
    expect(decodeAnyPayload(MessageType.Announce, bytes).type).toBe(MessageType.Announce);
    const badRing = bytes.slice();
    badRing[64] = 3;
    expect(() => decodePayload(MessageType.Announce, badRing)).toThrow(SchemaError);
    expect(() => encodePayload(MessageType.Announce, { ...cert, expiresMs: 1000 })).toThrow(EncodeError);
    expect(() => encodePayload(MessageType.Announce, { ...cert, tiers: ["Web"] })).toThrow(EncodeError);
    expect(() => encodePayload(MessageType.Announce, { ...cert, roles: ["root" as never] })).toThrow(
      EncodeError,
    );
    expect(() => encodePayload(MessageType.Announce, { ...cert, subject: new Uint8Array(31) })).toThrow(
      EncodeError,
    );
    const r = {
      commandId: new Uint8Array(16),
      exitCode: 0,
      stdout: new Uint8Array(),
      stderr: new Uint8Array(),
      truncated: true,
    };
    const rb = encodePayload(MessageType.Result, r);
    rb[rb.length - 1] = 2;
    expect(() => decodePayload(MessageType.Result, rb)).toThrow(SchemaError);
  });
});
