/**
 * Errors raised by protocol/. One class per condition; `name` equals the class name and `reason`
 * is a stable kebab-case string that counters elsewhere use. Branch on the class, never on text.
 */

/** Base of every error protocol/ throws on bad input. */
export class EnjinError extends Error {
  /** Stable kebab-case reason, used as a counter label. */
  readonly reason: string = "enjin-error";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Bytes could not be decoded. */
export class DecodeError extends EnjinError {
  override readonly reason: string = "decode-error";
}
/** The input ended before a declared field. */
export class TruncatedError extends DecodeError {
  override readonly reason = "truncated";
}
/** A declared length or count is above its limit. */
export class LimitExceededError extends DecodeError {
  override readonly reason = "limit-exceeded";
}
/** The envelope or frame version is outside PROTOCOL_VERSION_MIN..MAX. */
export class UnsupportedVersionError extends DecodeError {
  override readonly reason = "unsupported-version";
}
/** The message type is not in the append-only list. */
export class UnknownTypeError extends DecodeError {
  override readonly reason = "unknown-type";
}
/** Bytes remain after the last field. */
export class TrailingBytesError extends DecodeError {
  override readonly reason = "trailing-bytes";
}
/** A string is not valid UTF-8. */
export class InvalidUtf8Error extends DecodeError {
  override readonly reason = "invalid-utf8";
}
/** An envelope of one type was given where another was expected (e.g. a Ping as a certificate). */
export class WrongTypeError extends DecodeError {
  override readonly reason = "wrong-type";
}
/** A decoded value breaks a schema rule (range, pattern, closed list, length). */
export class SchemaError extends DecodeError {
  override readonly reason = "schema-invalid";
}

/** A signature does not verify. */
export class BadSignatureError extends EnjinError {
  override readonly reason = "bad-signature";
}
/** A caller passed an argument protocol/ cannot encode (programming error, not outside input). */
export class EncodeError extends EnjinError {
  override readonly reason = "encode-invalid";
}

/** A certificate or chain is refused. */
export class CertificateError extends EnjinError {
  override readonly reason: string = "certificate-invalid";
}
/** The certificate's expiry is at or before now. */
export class CertificateExpiredError extends CertificateError {
  override readonly reason = "expired";
}
/** The certificate's notBefore is after now. */
export class CertificateNotYetValidError extends CertificateError {
  override readonly reason = "not-yet-valid";
}
/** The child grants a role, compartment, tier or validity its issuer does not hold. */
export class WidensRightsError extends CertificateError {
  override readonly reason = "widens-rights";
}
/** The child's ring is not the one its issuer may certify. */
export class WrongRingError extends CertificateError {
  override readonly reason = "wrong-ring";
}
/** Subject equals issuer outside the root anchor. */
export class SelfSignedError extends CertificateError {
  override readonly reason = "self-signed";
}
/** The issuer holds no role allowing it to issue this certificate. */
export class IssuerNotAuthorizedError extends CertificateError {
  override readonly reason = "issuer-not-authorized";
}
/** The issuer's key has been revoked. */
export class IssuerRevokedError extends CertificateError {
  override readonly reason = "issuer-revoked";
}
/** The certificate's own subject has been revoked. */
export class CertificateRevokedError extends CertificateError {
  override readonly reason = "revoked";
}
/** The certificate's issuer field does not match the key that signed it or the previous link. */
export class IssuerMismatchError extends CertificateError {
  override readonly reason = "issuer-mismatch";
}
/** The chain is empty, too long, or its envelopes are not certificates. */
export class MalformedChainError extends CertificateError {
  override readonly reason = "malformed-chain";
}
