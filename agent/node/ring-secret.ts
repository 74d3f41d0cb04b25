/**
 * The ring secret: one random key per mesh network, with which every frame on that network is
 * sealed (agent/transport/sealed.ts), so that brokers and relays read nothing. The seed makes it at
 * `ringd init`; an issuer hands it to each joiner sealed to the joiner's own key (libsodium's
 * crypto_box_seal to the X25519 form of the joiner's ed25519 key) in JoinResponse.sealedSecrets,
 * so only the joiner can open it. It is kept in the store's `trust` sublevel.
 */

import type { Identity } from "../../protocol/index.ts";
import { sodium } from "../../protocol/index.ts";
import { RING_SECRET_BYTES } from "../transport/sealed.ts";
import { curveKeyPairOf, curvePublicKeyOf } from "../transport/zeromq-keys.ts";

/** The sealed secret did not open with this node's key, or is not a ring secret. */
export class RingSecretError extends Error {
  override readonly name = "RingSecretError";
}

/** `secret` sealed so that only the holder of `joinerKey` (ed25519) can open it. */
export function sealRingSecret(secret: Uint8Array, joinerKey: Uint8Array): Uint8Array {
  const out = new Uint8Array(secret.length + sodium.crypto_box_SEALBYTES);
  sodium.crypto_box_seal(out, secret, curvePublicKeyOf(joinerKey));
  return out;
}

/** Open a ring secret sealed to `identity`; RingSecretError when it does not open. */
export function openRingSecret(sealedSecret: Uint8Array, identity: Identity): Uint8Array {
  if (sealedSecret.length !== RING_SECRET_BYTES + sodium.crypto_box_SEALBYTES)
    throw new RingSecretError(
      `the issuer sent ${sealedSecret.length} bytes of sealed ring secret, not ${RING_SECRET_BYTES + sodium.crypto_box_SEALBYTES}: it may be an older ringd`,
    );
  const curve = curveKeyPairOf(identity);
  const secret = new Uint8Array(RING_SECRET_BYTES);
  const ok = sodium.crypto_box_seal_open(secret, sealedSecret, curve.publicKey, curve.secretKey);
  curve.secretKey.fill(0);
  if (!ok) throw new RingSecretError("the ring secret the issuer sent does not open with this node's key");
  return secret;
}
