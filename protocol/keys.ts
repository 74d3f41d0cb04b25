/**
 * Ed25519 identities and strict signatures, through sodium-native (libsodium).
 *
 * Verification is strict (libsodium >= 1.0.16 without ED25519_COMPAT): a signature whose scalar s
 * is not reduced (s >= L), a small-order or non-canonical R, and a small-order or non-canonical
 * public key are all refused. So nobody but the key's holder can turn a signed message into a
 * second valid signature (no malleation, strong unforgeability) — which is what lets the first 16
 * bytes of a signature serve as a message id: a relay cannot re-sign a message under a fresh id to
 * get it delivered twice. (The holder itself can sign the same bytes again with another nonce; that
 * is a new message of its own making.) See keys.test.ts and bench/verify.ts for the measurements.
 */

import { EncodeError } from "./errors.ts";
import { PUBLIC_KEY_BYTES, SECRET_KEY_BYTES, SEED_BYTES, SIGNATURE_BYTES } from "./limits.ts";
import { sodium } from "./sodium.ts";
import type { PublicKey } from "./types.ts";

/** A node's or operator's key pair. `secretKey` is libsodium's 64 bytes (seed || public key). */
export interface Identity {
  readonly publicKey: PublicKey;
  readonly secretKey: Uint8Array;
}

/**
 * Make a key pair. With a 32-byte `seed32` the result is deterministic (tests, golden vectors);
 * without, the seed comes from libsodium's CSPRNG.
 */
export function generateIdentity(seed32?: Uint8Array): Identity {
  const publicKey = new Uint8Array(PUBLIC_KEY_BYTES);
  const secretKey = new Uint8Array(SECRET_KEY_BYTES);
  if (seed32 === undefined) {
    sodium.crypto_sign_keypair(publicKey, secretKey);
  } else {
    if (seed32.length !== SEED_BYTES) throw new EncodeError(`seed must be ${SEED_BYTES} bytes`);
    sodium.crypto_sign_seed_keypair(publicKey, secretKey, seed32);
  }
  return { publicKey, secretKey };
}

/** Detached ed25519 signature (64 bytes) of `message`. */
export function sign(secretKey: Uint8Array, message: Uint8Array): Uint8Array {
  if (secretKey.length !== SECRET_KEY_BYTES)
    throw new EncodeError(`secret key must be ${SECRET_KEY_BYTES} bytes`);
  const signature = new Uint8Array(SIGNATURE_BYTES);
  sodium.crypto_sign_detached(signature, message, secretKey);
  return signature;
}

/**
 * Strict detached verification: false for wrong lengths, non-canonical s, small-order or
 * non-canonical R or public key, and of course for a signature that does not match. Never throws.
 */
export function verifyDetached(signature: Uint8Array, message: Uint8Array, publicKey: PublicKey): boolean {
  if (signature.length !== SIGNATURE_BYTES || publicKey.length !== PUBLIC_KEY_BYTES) return false;
  return sodium.crypto_sign_verify_detached(signature, message, publicKey);
}

/** SHA-256 of `input` (32 bytes). */
export function sha256(input: Uint8Array): Uint8Array {
  const out = new Uint8Array(32);
  sodium.crypto_hash_sha256(out, input);
  return out;
}

const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";

/** RFC 4648 base32, lowercase, without padding. */
export function base32(bytes: Uint8Array): string {
  let out = "";
  let bits = 0;
  let value = 0;
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

/** Human-readable key fingerprint: `ed25519:` + base32(sha256(publicKey)). The mesh id is the root's. */
export function fingerprint(publicKey: PublicKey): string {
  return "ed25519:" + base32(sha256(publicKey));
}

/** 64-char lowercase hex of a public key: the NodeId used as a map key by rings/. */
export function keyHex(publicKey: PublicKey): string {
  return Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString("hex");
}

/** Parse 64-char hex back into a public key; throws EncodeError on anything else. */
export function keyFromHex(hex: string): PublicKey {
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new EncodeError("key hex must be 64 lowercase hex chars");
  return new Uint8Array(Buffer.from(hex, "hex"));
}

/** Constant-length byte equality (not constant time; for public values such as keys and ids). */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
