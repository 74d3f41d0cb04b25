/**
 * Errors raised by bootstrap/. One class per condition; `name` equals the class name and `reason` is
 * a stable kebab-case counter label. Branch on the class, never on the message text.
 */
import { EnjinError } from "../protocol/index.ts";

/** A token string could not be decoded: it is not a whole enjin join token of a known version. */
export class TokenFormatError extends EnjinError {
  override readonly reason: string = "token-malformed";
}
/** The string does not start with the enjin token prefix: it is something else pasted by mistake. */
export class ForeignTokenError extends TokenFormatError {
  override readonly reason = "token-foreign";
}
/** The token body is not canonical base64url. */
export class TokenEncodingError extends TokenFormatError {
  override readonly reason = "token-encoding";
}
/** The token (string, field or count) is longer than its limit. */
export class TokenTooLongError extends TokenFormatError {
  override readonly reason = "token-too-long";
}
/** The token ends before a declared field: it was cut when copied. */
export class TokenTruncatedError extends TokenFormatError {
  override readonly reason = "token-truncated";
}
/** Bytes remain after the checksum. */
export class TokenTrailingBytesError extends TokenFormatError {
  override readonly reason = "token-trailing-bytes";
}
/** The token's format version is not one this build reads. */
export class TokenVersionError extends TokenFormatError {
  override readonly reason = "token-version";
}
/** The checksum does not match: the token was altered (a typo, a flipped bit). */
export class TokenChecksumError extends TokenFormatError {
  override readonly reason = "token-checksum";
}
/** A decoded field breaks a rule (empty endpoint list, invalid UTF-8, ...). */
export class TokenFieldError extends TokenFormatError {
  override readonly reason = "token-field";
}
/** The key the joiner reached does not match the fingerprint in the token. */
export class TokenIssuerMismatchError extends EnjinError {
  override readonly reason = "token-issuer-mismatch";
}

/** A join attempt was refused. Nothing about the token changed. */
export class RedeemError extends EnjinError {
  override readonly reason: string = "redeem-refused";
}
/** No token has this id on this issuer (never made, or pruned after expiry). */
export class UnknownTokenError extends RedeemError {
  override readonly reason = "token-unknown";
}
/** The token's expiry is at or before now. */
export class TokenExpiredError extends RedeemError {
  override readonly reason = "token-expired";
}
/** The token has no uses left. */
export class TokenExhaustedError extends RedeemError {
  override readonly reason = "token-exhausted";
}
/** The token was revoked by an operator. */
export class TokenRevokedError extends RedeemError {
  override readonly reason = "token-revoked";
}
/** The joiner's MAC does not verify: it does not hold the token's secret (or altered the request). */
export class BadJoinMacError extends RedeemError {
  override readonly reason = "bad-join-mac";
}
/** The request itself is unusable (e.g. the name asked for is not a label). */
export class InvalidJoinRequestError extends RedeemError {
  override readonly reason = "join-request-invalid";
}
/** Too many failed attempts lately for this token id or this source; try again later. */
export class RateLimitedError extends RedeemError {
  override readonly reason = "rate-limited";
}

/** A caller asked for a token the issuer may not make (bad scope, ttl or uses). Programming/operator error. */
export class TokenScopeError extends EnjinError {
  override readonly reason = "token-scope-invalid";
}
/** A stored token record is unreadable (corrupt, wrong schema, or sealed under another key). */
export class TokenRecordCorruptError extends EnjinError {
  override readonly reason = "token-record-corrupt";
}
