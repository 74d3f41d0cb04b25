import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  decodeEnvelope,
  envelopeIdKey,
  messageIdBytes,
  messageIdFromKey,
  messageIdKey,
  openEnvelope,
  peekEnvelopeType,
  sealEnvelope,
  verifyEnvelope,
} from "./envelope.ts";
import {
  BadSignatureError,
  EnjinError,
  LimitExceededError,
  TrailingBytesError,
  TruncatedError,
  UnknownTypeError,
  UnsupportedVersionError,
} from "./errors.ts";
import { generateIdentity } from "./keys.ts";
import { MAX_ENVELOPE_BYTES, MAX_PAYLOAD_BYTES } from "./limits.ts";
import { MessageType } from "./types.ts";

const alice = generateIdentity(new Uint8Array(32).fill(0xa1));
const types = Object.values(MessageType);

/** Run `f`; return true if it succeeded, false if it threw an EnjinError, rethrow anything else. */
function decodesOrEnjinError(f: () => unknown): boolean {
  try {
    f();
    return true;
  } catch (e) {
    if (e instanceof EnjinError) return false;
    throw e;
  }
}

describe("envelope", () => {
  it("seals, decodes as views, and verifies", () => {
    const payload = new TextEncoder().encode("hello");
    const bytes = sealEnvelope(alice, MessageType.Broadcast, payload);
    const env = decodeEnvelope(bytes);
    expect(env.version).toBe(1);
    expect(env.type).toBe(MessageType.Broadcast);
    expect(env.sender).toEqual(alice.publicKey);
    expect(env.payload).toEqual(payload);
    expect(env.payload.buffer).toBe(bytes.buffer);
    expect(verifyEnvelope(env)).toBe(true);
    expect(openEnvelope(bytes).type).toBe(MessageType.Broadcast);
  });

  it("rejects each malformation with its own error", () => {
    const bytes = sealEnvelope(alice, MessageType.Ping, new Uint8Array(4));
    expect(() => decodeEnvelope(bytes.subarray(0, bytes.length - 1))).toThrow(TruncatedError);
    expect(() => decodeEnvelope(new Uint8Array([...bytes, 0]))).toThrow(TrailingBytesError);
    const v = bytes.slice();
    v[0] = 2;
    expect(() => decodeEnvelope(v)).toThrow(UnsupportedVersionError);
    const t = bytes.slice();
    t[2] = 99;
    expect(() => decodeEnvelope(t)).toThrow(UnknownTypeError);
    const l = bytes.slice();
    l[35] = 0xff;
    expect(() => decodeEnvelope(l)).toThrow(LimitExceededError);
    expect(() => decodeEnvelope(new Uint8Array(MAX_ENVELOPE_BYTES + 1))).toThrow(LimitExceededError);
    expect(() => decodeEnvelope(new Uint8Array(0))).toThrow(TruncatedError);
    const s = bytes.slice();
    s[s.length - 1]! ^= 1;
    expect(() => openEnvelope(s)).toThrow(BadSignatureError);
  });

  it("accepts the largest payload and refuses one byte more", () => {
    const big = sealEnvelope(alice, MessageType.Broadcast, new Uint8Array(MAX_PAYLOAD_BYTES));
    expect(big.length).toBe(MAX_ENVELOPE_BYTES);
    expect(verifyEnvelope(decodeEnvelope(big))).toBe(true);
    expect(() => sealEnvelope(alice, MessageType.Broadcast, new Uint8Array(MAX_PAYLOAD_BYTES + 1))).toThrow(
      EnjinError,
    );
  });

  it("reads the id without decoding; the id is the signature's first 16 bytes", () => {
    const bytes = sealEnvelope(alice, MessageType.Broadcast, new Uint8Array([1, 2, 3]));
    const env = decodeEnvelope(bytes);
    const key = envelopeIdKey(bytes);
    expect(key).not.toBeNull();
    expect(key!.length).toBe(16);
    expect(messageIdBytes(bytes)).toEqual(env.signature.subarray(0, 16));
    expect(messageIdKey(env.signature.subarray(0, 16))).toBe(key);
    expect(messageIdFromKey(key!)).toEqual(env.signature.subarray(0, 16));
    expect(envelopeIdKey(bytes.subarray(1))).toBeNull();
    expect(envelopeIdKey(new Uint8Array(3))).toBeNull();
    expect(messageIdBytes(new Uint8Array(200))).toBeNull();
  });

  it("property: seal/decode round-trips every type and payload", () => {
    fc.assert(
      fc.property(fc.constantFrom(...types), fc.uint8Array({ maxLength: 2048 }), (type, payload) => {
        const env = decodeEnvelope(sealEnvelope(alice, type, payload));
        return env.type === type && Buffer.from(env.payload).equals(payload) && verifyEnvelope(env);
      }),
      { numRuns: 200 },
    );
  });

  it("peeks at the declared type without decoding: the type of a well-formed envelope, else null", () => {
    for (const type of types)
      expect(peekEnvelopeType(sealEnvelope(alice, type, new Uint8Array(5)))).toBe(type);
    const bytes = sealEnvelope(alice, MessageType.Revoke, new Uint8Array(5));
    expect(peekEnvelopeType(bytes.subarray(0, bytes.length - 1))).toBeNull();
    const unknown = bytes.slice();
    unknown[1] = 0xff;
    expect(peekEnvelopeType(unknown)).toBeNull();
  });

  it("property: random bytes either decode or throw an EnjinError; envelopeIdKey and peekEnvelopeType agree", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        const decodes = decodesOrEnjinError(() => decodeEnvelope(bytes));
        envelopeIdKey(bytes);
        const peeked = peekEnvelopeType(bytes);
        return decodes ? peeked === decodeEnvelope(bytes).type : true;
      }),
      { numRuns: 2000 },
    );
  });

  it("property: truncations and extensions of a valid envelope throw an EnjinError", () => {
    const bytes = sealEnvelope(alice, MessageType.Broadcast, new Uint8Array(40).fill(7));
    fc.assert(
      fc.property(fc.nat(bytes.length - 1), fc.uint8Array({ minLength: 1, maxLength: 20 }), (cut, extra) => {
        const short = decodesOrEnjinError(() => decodeEnvelope(bytes.subarray(0, cut)));
        const long = decodesOrEnjinError(() => decodeEnvelope(new Uint8Array([...bytes, ...extra])));
        return !short && !long && envelopeIdKey(bytes.subarray(0, cut)) === null;
      }),
    );
  });

  it("property: a bit-flipped signed envelope never verifies", () => {
    const bytes = sealEnvelope(alice, MessageType.Command, new Uint8Array(64).fill(3));
    fc.assert(
      fc.property(fc.nat(bytes.length * 8 - 1), (bit) => {
        const flipped = bytes.slice();
        flipped[bit >>> 3]! ^= 1 << (bit & 7);
        try {
          return !verifyEnvelope(decodeEnvelope(flipped));
        } catch (e) {
          if (e instanceof EnjinError) return true;
          throw e;
        }
      }),
      { numRuns: 1000 },
    );
  });
});
