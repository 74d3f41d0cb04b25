import { describe, expect, it } from "vitest";
import { generateIdentity, keyHex } from "../../protocol/index.ts";
import {
  CURVE_KEY_BYTES,
  curveKeyPairOf,
  curvePublicKeyOf,
  ed25519CandidatesOf,
  KeyConversionError,
  z85Encode,
} from "./zeromq-keys.ts";

describe("zeromq keys", () => {
  it("Z85-encodes the RFC 32 test vector", () => {
    const bytes = Uint8Array.from([0x86, 0x4f, 0xd2, 0x6f, 0xb5, 0x59, 0xf7, 0x5b]);
    expect(z85Encode(bytes)).toBe("HelloWorld");
    expect(z85Encode(new Uint8Array(32))).toHaveLength(40);
    expect(() => z85Encode(new Uint8Array(3))).toThrow(KeyConversionError);
  });

  it("derives the same CURVE public key from the identity and from its public key alone", () => {
    const id = generateIdentity(new Uint8Array(32).fill(7));
    const pair = curveKeyPairOf(id);
    expect(pair.publicKey).toHaveLength(CURVE_KEY_BYTES);
    expect(pair.secretKey).toHaveLength(CURVE_KEY_BYTES);
    expect(pair.publicKey).toEqual(curvePublicKeyOf(id.publicKey));
  });

  it("maps a CURVE key back to candidates that include the ed25519 key, all of which convert back", () => {
    for (let i = 0; i < 50; i++) {
      const id = generateIdentity();
      const curve = curvePublicKeyOf(id.publicKey);
      const candidates = ed25519CandidatesOf(curve);
      expect(candidates.map(keyHex)).toContain(keyHex(id.publicKey));
      for (const c of candidates) expect(curvePublicKeyOf(c)).toEqual(curve);
    }
  });

  it("gives no candidates for malformed CURVE keys and refuses ed25519 keys with no CURVE form", () => {
    expect(ed25519CandidatesOf(new Uint8Array(31))).toEqual([]);
    expect(ed25519CandidatesOf(new Uint8Array(32).fill(0xff))).toEqual([]); // u >= p
    expect(() => curvePublicKeyOf(new Uint8Array(32))).toThrow(KeyConversionError); // small order
    expect(() => curvePublicKeyOf(new Uint8Array(5))).toThrow(KeyConversionError);
  });
});
