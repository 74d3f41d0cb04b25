/**
 * The joiner's side of a token: check that the node it reached holds the key the token names, then
 * build the JoinRequest that proves it holds the secret without sending it.
 */
import { bytesEqual, type JoinRequest, joinMac, type PublicKey, sha256 } from "../protocol/index.ts";
import { TokenIssuerMismatchError } from "./errors.ts";
import type { JoinToken } from "./token-codec.ts";

/** Throw TokenIssuerMismatchError unless `issuerKey` is the key whose fingerprint the token carries. */
export function assertTokenIssuer(token: JoinToken, issuerKey: PublicKey): void {
  if (!bytesEqual(sha256(issuerKey), token.issuerDigest))
    throw new TokenIssuerMismatchError(
      `the node reached does not hold the key the token names (${token.issuerFingerprint}): ` +
        "wrong endpoint, or someone in between; say nothing more to it",
    );
}

/** The JoinRequest for `token`, for a joiner whose fresh key is `joinerKey`, asking to be `name`. */
export function makeJoinRequest(token: JoinToken, joinerKey: PublicKey, name: string): JoinRequest {
  return {
    tokenId: Uint8Array.from(token.tokenId),
    joinerKey: Uint8Array.from(joinerKey),
    mac: joinMac(token.secret, token.tokenId, joinerKey),
    name,
  };
}
