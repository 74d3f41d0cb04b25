/**
 * Revocations (Revoke envelopes). Who may revoke whom is the trust store's decision (rings/);
 * this file only signs and decodes them.
 */
import { sealEnvelope } from "./envelope.ts";
import { EncodeError, IssuerMismatchError, WrongTypeError } from "./errors.ts";
import { bytesEqual, type Identity } from "./keys.ts";
import { decodePayload, encodePayload } from "./messages.ts";
import { type Envelope, MessageType, type Revocation } from "./types.ts";

/** Sign `rev` as a Revoke envelope by `issuer`; rev.issuer must be issuer.publicKey. */
export function issueRevocation(issuer: Identity, rev: Revocation): Uint8Array {
  if (!bytesEqual(rev.issuer, issuer.publicKey)) {
    throw new EncodeError("revocation issuer field must equal the signing key");
  }
  return sealEnvelope(issuer, MessageType.Revoke, encodePayload(MessageType.Revoke, rev));
}

/**
 * Decode the revocation in a Revoke envelope (does NOT verify the signature). Throws
 * WrongTypeError for another type, a DecodeError for a bad payload, and IssuerMismatchError
 * when the envelope's sender is not the revocation's issuer.
 */
export function decodeRevocation(env: Envelope): Revocation {
  if (env.type !== MessageType.Revoke) throw new WrongTypeError(`expected Revoke, got type ${env.type}`);
  const rev = decodePayload(MessageType.Revoke, env.payload);
  if (!bytesEqual(env.sender, rev.issuer)) {
    throw new IssuerMismatchError("revocation issuer is not the envelope's signer");
  }
  return rev;
}
