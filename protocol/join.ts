/**
 * The join-token proof: a joiner shows it knows a token's secret without sending it, by a MAC
 * (libsodium crypto_auth, HMAC-SHA-512-256) over JOIN_DOMAIN_TAG || token id || the joiner's public
 * key. Binding the key stops a relay from replaying the proof for a key of its own.
 *
 * The MAC is keyed by the token's *MAC key*, sha256(JOIN_KEY_DOMAIN_TAG || secret), not by the secret
 * itself: the issuer stores only that hash (sealed at rest) and never the secret, so the token string
 * cannot be recovered from the issuer's state. (With a symmetric MAC whatever the issuer stores is
 * enough to check, and so to forge, a proof: that is why bootstrap/ seals it under the node's key.)
 */

import { EncodeError } from "./errors.ts";
import { sha256 } from "./keys.ts";
import { MAC_BYTES, PUBLIC_KEY_BYTES, TOKEN_ID_BYTES } from "./limits.ts";
import { sodium } from "./sodium.ts";
import type { PublicKey } from "./types.ts";

/** Domain separation for join MACs: "enjin/join/v1" then a NUL. */
export const JOIN_DOMAIN_TAG: Uint8Array = new TextEncoder().encode("enjin/join/v1\0");
/** Domain separation for deriving a token's MAC key from its secret: "enjin/join-key/v1" then a NUL. */
export const JOIN_KEY_DOMAIN_TAG: Uint8Array = new TextEncoder().encode("enjin/join-key/v1\0");
/** Bytes in a join-token secret. */
export const TOKEN_SECRET_BYTES = 32;
/** Bytes in a join-token MAC key (a sha256 output). */
export const JOIN_MAC_KEY_BYTES = 32;

function macInput(tokenId: Uint8Array, joinerKey: PublicKey): Uint8Array {
  if (tokenId.length !== TOKEN_ID_BYTES) throw new EncodeError(`token id must be ${TOKEN_ID_BYTES} bytes`);
  if (joinerKey.length !== PUBLIC_KEY_BYTES)
    throw new EncodeError(`joiner key must be ${PUBLIC_KEY_BYTES} bytes`);
  const input = new Uint8Array(JOIN_DOMAIN_TAG.length + TOKEN_ID_BYTES + PUBLIC_KEY_BYTES);
  input.set(JOIN_DOMAIN_TAG, 0);
  input.set(tokenId, JOIN_DOMAIN_TAG.length);
  input.set(joinerKey, JOIN_DOMAIN_TAG.length + TOKEN_ID_BYTES);
  return input;
}

/** A token's MAC key: sha256(JOIN_KEY_DOMAIN_TAG || secret). What the issuer keeps instead of the secret. */
export function joinMacKey(secret: Uint8Array): Uint8Array {
  if (secret.length !== TOKEN_SECRET_BYTES)
    throw new EncodeError(`token secret must be ${TOKEN_SECRET_BYTES} bytes`);
  const input = new Uint8Array(JOIN_KEY_DOMAIN_TAG.length + TOKEN_SECRET_BYTES);
  input.set(JOIN_KEY_DOMAIN_TAG, 0);
  input.set(secret, JOIN_KEY_DOMAIN_TAG.length);
  return sha256(input);
}

/** The MAC a joiner puts in its JoinRequest: crypto_auth keyed by joinMacKey(secret). */
export function joinMac(secret: Uint8Array, tokenId: Uint8Array, joinerKey: PublicKey): Uint8Array {
  const mac = new Uint8Array(MAC_BYTES);
  sodium.crypto_auth(mac, macInput(tokenId, joinerKey), joinMacKey(secret));
  return mac;
}

/**
 * The issuer's constant-time check of a joiner's MAC, given the token's stored MAC key
 * (joinMacKey(secret)); false on any wrong length. Never throws.
 */
export function verifyJoinMac(
  mac: Uint8Array,
  macKey: Uint8Array,
  tokenId: Uint8Array,
  joinerKey: PublicKey,
): boolean {
  if (mac.length !== MAC_BYTES || macKey.length !== JOIN_MAC_KEY_BYTES) return false;
  if (tokenId.length !== TOKEN_ID_BYTES || joinerKey.length !== PUBLIC_KEY_BYTES) return false;
  return sodium.crypto_auth_verify(mac, macInput(tokenId, joinerKey), macKey);
}
