/**
 * A node's ed25519 key as a NATS nkey: the same key, in NATS's text encoding (base32 of a prefix
 * byte, the 32 key bytes and a CRC16). The encoding is nkeys.js's own (the library nats.js ships
 * with); nothing here is cryptography of ours.
 *
 * nkeys.js exports `fromSeed`, which takes an already-encoded seed, but not the encoder; its
 * `Codec` (lib/codec.js) is the encoder every nkey in nats.js goes through, so we use it directly.
 */
import { nkeys } from "nats";
import { Codec } from "nkeys.js/lib/codec.js";

/** Bytes of an ed25519 public key and of an ed25519 seed. */
export const NKEY_RAW_KEY_BYTES = 32;
/** Bytes of libsodium's ed25519 secret key (seed || public key). */
export const LIBSODIUM_SECRET_KEY_BYTES = 64;

/** A key handed to the nkey encoders has the wrong length. */
export class InvalidNkeyInputError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The nkey user public key (`U...`, 56 characters) of an ed25519 public key. */
export function userNkey(publicKey: Uint8Array): string {
  if (publicKey.length !== NKEY_RAW_KEY_BYTES) {
    throw new InvalidNkeyInputError(
      `public key must be ${NKEY_RAW_KEY_BYTES} bytes, got ${publicKey.length}`,
    );
  }
  return new TextDecoder().decode(Codec.encode(nkeys.Prefix.User, publicKey));
}

/**
 * The encoded nkey user seed (`SU...`) of a libsodium secret key, as the bytes nats.js's
 * `nkeyAuthenticator` takes. The caller owns the result and should not log or persist it.
 */
export function userNkeySeed(secretKey: Uint8Array): Uint8Array {
  if (secretKey.length !== LIBSODIUM_SECRET_KEY_BYTES) {
    throw new InvalidNkeyInputError(
      `secret key must be ${LIBSODIUM_SECRET_KEY_BYTES} bytes (seed || public key), got ${secretKey.length}`,
    );
  }
  return Codec.encodeSeed(nkeys.Prefix.User, secretKey.subarray(0, NKEY_RAW_KEY_BYTES));
}
