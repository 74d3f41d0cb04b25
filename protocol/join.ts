/**
 * The join-token proof: a joiner shows it knows a token's secret without sending it, by a MAC
 * (libsodium crypto_auth, HMAC-SHA-512-256) keyed by the secret over
 * JOIN_DOMAIN_TAG || token id || the joiner's public key. Binding the key stops a relay from
 * replaying the proof for a key of its own.
 */
import sodium from "sodium-native";
import { EncodeError } from "./errors.ts";
import { MAC_BYTES, PUBLIC_KEY_BYTES, TOKEN_ID_BYTES } from "./limits.ts";
import type { PublicKey } from "./types.ts";

/** Domain separation for join MACs: "enjin/join/v1" then a NUL. */
export const JOIN_DOMAIN_TAG: Uint8Array = new TextEncoder().encode("enjin/join/v1\0");
/** Bytes in a join-token secret. */
export const TOKEN_SECRET_BYTES = 32;

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

/** The MAC a joiner puts in its JoinRequest. */
export function joinMac(secret: Uint8Array, tokenId: Uint8Array, joinerKey: PublicKey): Uint8Array {
  if (secret.length !== TOKEN_SECRET_BYTES)
    throw new EncodeError(`token secret must be ${TOKEN_SECRET_BYTES} bytes`);
  const mac = new Uint8Array(MAC_BYTES);
  sodium.crypto_auth(mac, macInput(tokenId, joinerKey), secret);
  return mac;
}

/** Constant-time check of a joiner's MAC; false on any wrong length. Never throws. */
export function verifyJoinMac(
  mac: Uint8Array,
  secret: Uint8Array,
  tokenId: Uint8Array,
  joinerKey: PublicKey,
): boolean {
  if (mac.length !== MAC_BYTES || secret.length !== TOKEN_SECRET_BYTES) return false;
  if (tokenId.length !== TOKEN_ID_BYTES || joinerKey.length !== PUBLIC_KEY_BYTES) return false;
  return sodium.crypto_auth_verify(mac, macInput(tokenId, joinerKey), secret);
}
