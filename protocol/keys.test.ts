import { createPublicKey, verify as nodeVerify } from "node:crypto";
import { describe, expect, it } from "vitest";
import { base32, fingerprint, generateIdentity, keyFromHex, keyHex, sign, verifyDetached } from "./keys.ts";

/** The order of the ed25519 base point: L = 2^252 + 27742317777372353535851937790883648493. */
const L = (1n << 252n) + 27742317777372353535851937790883648493n;

function leToBig(b: Uint8Array): bigint {
  let x = 0n;
  for (let i = b.length - 1; i >= 0; i--) x = (x << 8n) | BigInt(b[i]!);
  return x;
}
function bigToLe(x: bigint, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = Number(x & 0xffn);
    x >>= 8n;
  }
  return out;
}
function seed(n: number): Uint8Array {
  return new Uint8Array(32).fill(n);
}
const msg = new TextEncoder().encode("enjin strictness");

/** Identity point (order 1): y = 1. */
const IDENTITY_POINT = bigToLe(1n, 32);
/** y = 0: a point of order 4. */
const ORDER4_POINT = new Uint8Array(32);
/** y = p + 1: a non-canonical encoding of the identity. */
const NONCANONICAL_IDENTITY = bigToLe((1n << 255n) - 19n + 1n, 32);

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

describe("keys", () => {
  it("derives the same key pair from the same seed", () => {
    const a = generateIdentity(seed(1));
    const b = generateIdentity(seed(1));
    expect(keyHex(a.publicKey)).toBe(keyHex(b.publicKey));
    expect(keyHex(generateIdentity(seed(2)).publicKey)).not.toBe(keyHex(a.publicKey));
    expect(generateIdentity().publicKey.length).toBe(32);
  });

  it("signs and verifies", () => {
    const id = generateIdentity(seed(3));
    const sig = sign(id.secretKey, msg);
    expect(verifyDetached(sig, msg, id.publicKey)).toBe(true);
    expect(verifyDetached(sig, new TextEncoder().encode("other"), id.publicKey)).toBe(false);
    expect(verifyDetached(sig, msg, generateIdentity(seed(4)).publicKey)).toBe(false);
    expect(verifyDetached(sig.subarray(0, 63), msg, id.publicKey)).toBe(false);
    expect(verifyDetached(sig, msg, id.publicKey.subarray(0, 31))).toBe(false);
  });

  it("refuses a malleated signature (s + L) that a lax verifier accepts", () => {
    const id = generateIdentity(seed(5));
    const sig = sign(id.secretKey, msg);
    const s = leToBig(sig.subarray(32));
    expect(s < L).toBe(true);
    const malleated = concat(sig.subarray(0, 32), bigToLe(s + L, 32));
    expect(verifyDetached(malleated, msg, id.publicKey)).toBe(false);
    // s = L exactly (the zero scalar in non-canonical form) is refused too.
    expect(verifyDetached(concat(sig.subarray(0, 32), bigToLe(L, 32)), msg, id.publicKey)).toBe(false);
  });

  it("refuses small-order and non-canonical public keys with the trivial forgery (R = identity, s = 0)", () => {
    const forged = concat(IDENTITY_POINT, new Uint8Array(32));
    expect(verifyDetached(forged, msg, IDENTITY_POINT)).toBe(false);
    expect(verifyDetached(forged, msg, ORDER4_POINT)).toBe(false);
    expect(verifyDetached(forged, msg, NONCANONICAL_IDENTITY)).toBe(false);
    // Non-canonical R (y = p + 1, the identity again) with s = 0 under the identity key.
    expect(verifyDetached(concat(NONCANONICAL_IDENTITY, new Uint8Array(32)), msg, IDENTITY_POINT)).toBe(
      false,
    );
    // node:crypto (OpenSSL) accepts this forgery under the identity key: the reason we use libsodium.
    const der = Buffer.concat([Buffer.from("302a300506032b6570032100", "hex"), IDENTITY_POINT]);
    const nodeKey = createPublicKey({ key: der, format: "der", type: "spki" });
    expect(nodeVerify(null, msg, nodeKey, forged)).toBe(true);
  });

  it("refuses small-order R and the all-zero signature", () => {
    const id = generateIdentity(seed(6));
    const sig = sign(id.secretKey, msg);
    expect(verifyDetached(new Uint8Array(64), msg, id.publicKey)).toBe(false);
    expect(verifyDetached(concat(ORDER4_POINT, sig.subarray(32)), msg, id.publicKey)).toBe(false);
    expect(verifyDetached(concat(IDENTITY_POINT, sig.subarray(32)), msg, id.publicKey)).toBe(false);
    expect(verifyDetached(concat(NONCANONICAL_IDENTITY, sig.subarray(32)), msg, id.publicKey)).toBe(false);
  });

  it("formats fingerprints and hex ids", () => {
    const id = generateIdentity(seed(7));
    expect(fingerprint(id.publicKey)).toMatch(/^ed25519:[a-z2-7]{52}$/);
    expect(keyHex(id.publicKey)).toMatch(/^[0-9a-f]{64}$/);
    expect(keyHex(keyFromHex(keyHex(id.publicKey)))).toBe(keyHex(id.publicKey));
    expect(base32(new TextEncoder().encode("foobar"))).toBe("mzxw6ytboi");
    expect(() => keyFromHex("zz")).toThrow();
  });
});
