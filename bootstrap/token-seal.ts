/**
 * Sealing a token's MAC key at rest: AES-256-GCM under a key derived from the issuer's node key,
 * with the token id as associated data (a sealed key moved to another record does not open). So a
 * copy of the database alone (a backup, a stolen disk image without the 0600 key file) can neither
 * recover a token nor forge a join proof.
 */
import { createCipheriv, createDecipheriv } from "node:crypto";
import { sha256 } from "../protocol/index.ts";
import { TokenRecordCorruptError } from "./errors.ts";

/** Bytes in a seal key. */
export const SEAL_KEY_BYTES = 32;
/** Bytes in a GCM nonce. */
export const SEAL_NONCE_BYTES = 12;
/** Bytes in a GCM tag. */
export const SEAL_TAG_BYTES = 16;
/** Domain separation for deriving the seal key from a node's secret key. */
export const TOKEN_SEAL_DOMAIN_TAG: Uint8Array = new TextEncoder().encode("enjin/token-seal/v1\0");

/** The seal key of a node: sha256(TOKEN_SEAL_DOMAIN_TAG || the node's 32-byte ed25519 seed). */
export function deriveTokenSealKey(nodeSecretKey: Uint8Array): Uint8Array {
  if (nodeSecretKey.length < 32) throw new RangeError("node secret key must hold a 32-byte seed");
  const input = new Uint8Array(TOKEN_SEAL_DOMAIN_TAG.length + 32);
  input.set(TOKEN_SEAL_DOMAIN_TAG, 0);
  input.set(nodeSecretKey.subarray(0, 32), TOKEN_SEAL_DOMAIN_TAG.length);
  return sha256(input);
}

/** Seal `plain` under `key`, bound to `associated`; returns base64url(nonce || ciphertext || tag). */
export function seal(key: Uint8Array, nonce: Uint8Array, plain: Uint8Array, associated: Uint8Array): string {
  if (key.length !== SEAL_KEY_BYTES || nonce.length !== SEAL_NONCE_BYTES)
    throw new RangeError("seal needs a 32-byte key and a 12-byte nonce");
  const cipher = createCipheriv("aes-256-gcm", key, nonce, { authTagLength: SEAL_TAG_BYTES });
  cipher.setAAD(associated);
  const body = Buffer.concat([cipher.update(plain), cipher.final()]);
  return Buffer.concat([nonce, body, cipher.getAuthTag()]).toString("base64url");
}

/** Open what `seal` made; TokenRecordCorruptError if it was altered or sealed under another key. */
export function unseal(key: Uint8Array, sealed: string, associated: Uint8Array): Uint8Array {
  const all = Buffer.from(sealed, "base64url");
  if (all.length < SEAL_NONCE_BYTES + SEAL_TAG_BYTES)
    throw new TokenRecordCorruptError("sealed MAC key is too short");
  try {
    const decipher = createDecipheriv("aes-256-gcm", key, all.subarray(0, SEAL_NONCE_BYTES), {
      authTagLength: SEAL_TAG_BYTES,
    });
    decipher.setAAD(associated);
    decipher.setAuthTag(all.subarray(all.length - SEAL_TAG_BYTES));
    const body = all.subarray(SEAL_NONCE_BYTES, all.length - SEAL_TAG_BYTES);
    return new Uint8Array(Buffer.concat([decipher.update(body), decipher.final()]));
  } catch (cause) {
    throw new TokenRecordCorruptError(
      "sealed MAC key does not open: the record was altered, or the node key changed since the token was made",
      { cause },
    );
  }
}
