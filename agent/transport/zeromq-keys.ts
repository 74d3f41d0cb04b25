/**
 * Keys for the ZeroMQ transport: a node's CURVE key pair *is* its ed25519 identity, converted by
 * libsodium (crypto_sign_ed25519_{pk,sk}_to_curve25519), so a certified ed25519 key needs no second
 * certificate. No crypto is written here, only conversions and an encoding:
 *
 * - ed25519 → curve25519 (public and secret) through libsodium.
 * - curve25519 public → ed25519 public, for the ZAP handler, which learns only the client's CURVE
 *   key. The map is birational: the Edwards y is (u - 1) / (u + 1) mod 2^255 - 19, and only the
 *   sign bit of x is lost, so exactly two ed25519 encodings are candidates. Each candidate is
 *   checked by converting it back with libsodium, so an arithmetic slip can only refuse a key,
 *   never admit a wrong one. (P and -P share a CURVE key; holding one CURVE secret speaks for both,
 *   which matters only if both were certified, and nobody can make a seed for -P from P's.)
 * - Z85 (ZeroMQ RFC 32), the text form zeromq.js takes for CURVE keys.
 */

import type { Identity } from "../../protocol/index.ts";
import { sodium } from "../../protocol/index.ts";

/** Bytes in a curve25519 key, public or secret. */
export const CURVE_KEY_BYTES = 32;

/** The libsodium conversions used here (protocol/sodium-native.d.ts does not declare them). */
interface SodiumCurveConversions {
  crypto_sign_ed25519_pk_to_curve25519(curvePk: Uint8Array, edPk: Uint8Array): void;
  crypto_sign_ed25519_sk_to_curve25519(curveSk: Uint8Array, edSk: Uint8Array): void;
}
const conversions = sodium as unknown as SodiumCurveConversions;

/** A curve25519 key pair derived from an ed25519 identity. */
export interface CurveKeyPair {
  /** 32 bytes. */
  readonly publicKey: Uint8Array;
  /** 32 bytes; treat as secret as the ed25519 key it came from. */
  readonly secretKey: Uint8Array;
}

/** The ed25519 key cannot be converted (wrong length, small order, not on the curve). */
export class KeyConversionError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The CURVE public key of an ed25519 public key; throws KeyConversionError if it has none. */
export function curvePublicKeyOf(ed25519PublicKey: Uint8Array): Uint8Array {
  const out = new Uint8Array(CURVE_KEY_BYTES);
  try {
    conversions.crypto_sign_ed25519_pk_to_curve25519(out, ed25519PublicKey);
  } catch (err) {
    throw new KeyConversionError("ed25519 public key has no curve25519 form", { cause: err });
  }
  return out;
}

/** The CURVE key pair of an ed25519 identity; throws KeyConversionError on a bad identity. */
export function curveKeyPairOf(identity: Identity): CurveKeyPair {
  const secretKey = new Uint8Array(CURVE_KEY_BYTES);
  try {
    conversions.crypto_sign_ed25519_sk_to_curve25519(secretKey, identity.secretKey);
  } catch (err) {
    throw new KeyConversionError("ed25519 secret key has no curve25519 form", { cause: err });
  }
  return { publicKey: curvePublicKeyOf(identity.publicKey), secretKey };
}

const P = (1n << 255n) - 19n;

function modPow(base: bigint, exponent: bigint): bigint {
  let result = 1n;
  let b = base % P;
  let e = exponent;
  while (e > 0n) {
    if (e & 1n) result = (result * b) % P;
    b = (b * b) % P;
    e >>= 1n;
  }
  return result;
}

function fromLittleEndian(bytes: Uint8Array): bigint {
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i]!);
  return n;
}

function toLittleEndian32(n: bigint): Uint8Array {
  const out = new Uint8Array(32);
  let v = n;
  for (let i = 0; i < 32; i++) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The ed25519 public keys (zero, one or two) whose CURVE key is `curvePublicKey`, each confirmed
 * by converting it back with libsodium. Never throws; a malformed key gives [].
 */
export function ed25519CandidatesOf(curvePublicKey: Uint8Array): Uint8Array[] {
  if (curvePublicKey.length !== CURVE_KEY_BYTES) return [];
  const u = fromLittleEndian(curvePublicKey);
  if (u >= P || (u + 1n) % P === 0n) return [];
  const y = (((u - 1n + P) % P) * modPow(u + 1n, P - 2n)) % P;
  const out: Uint8Array[] = [];
  for (const signBit of [0, 0x80]) {
    const candidate = toLittleEndian32(y);
    candidate[31] = (candidate[31]! & 0x7f) | signBit;
    try {
      if (sameBytes(curvePublicKeyOf(candidate), curvePublicKey)) out.push(candidate);
    } catch {
      // Not a valid point with this sign: not a candidate.
    }
  }
  return out;
}

const Z85_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

/** Z85-encode `bytes` (length a multiple of 4), as ZeroMQ RFC 32 defines; 32 bytes give 40 chars. */
export function z85Encode(bytes: Uint8Array): string {
  if (bytes.length % 4 !== 0) throw new KeyConversionError("Z85 input length must be a multiple of 4");
  let out = "";
  for (let i = 0; i < bytes.length; i += 4) {
    let value = ((bytes[i]! << 24) | (bytes[i + 1]! << 16) | (bytes[i + 2]! << 8) | bytes[i + 3]!) >>> 0;
    const chunk: string[] = [];
    for (let k = 0; k < 5; k++) {
      chunk.push(Z85_ALPHABET[value % 85]!);
      value = Math.floor(value / 85);
    }
    out += chunk.reverse().join("");
  }
  return out;
}
