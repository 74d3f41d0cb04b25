/**
 * The join token as a person copies it: one line, `enjin1.` + base64url (no padding) of
 *
 *   version      u8        TOKEN_FORMAT_VERSION
 *   endpoints    u16 count (1..MAX_TOKEN_ENDPOINTS) of u16 length + UTF-8 (1..MAX_ADDR_BYTES,
 *                no whitespace or control characters): where the issuer listens
 *   issuer       32 bytes  sha256 of the issuer's public key (the digest inside `fingerprint`)
 *   tokenId      TOKEN_ID_BYTES
 *   secret       TOKEN_SECRET_BYTES
 *   checksum     TOKEN_CHECKSUM_BYTES: the first bytes of sha256(every byte before it)
 *
 * The decoder is bounded: the string length is checked before base64 is decoded, every count and
 * length against its limit and the bytes left, and a typo or flipped bit fails the checksum. Each
 * way of being wrong is its own TokenFormatError subclass whose message says what to do.
 */
import {
  base32,
  DecodeError,
  InvalidUtf8Error,
  LimitExceededError,
  MAX_ADDR_BYTES,
  type PublicKey,
  Reader,
  sha256,
  TOKEN_ID_BYTES,
  TOKEN_SECRET_BYTES,
  TrailingBytesError,
  TruncatedError,
  Writer,
} from "../protocol/index.ts";
import {
  ForeignTokenError,
  TokenChecksumError,
  TokenEncodingError,
  TokenFieldError,
  TokenFormatError,
  TokenTooLongError,
  TokenTrailingBytesError,
  TokenTruncatedError,
  TokenVersionError,
} from "./errors.ts";

/** Prefix of every token string this build writes; the digit is the format generation. */
export const TOKEN_PREFIX = "enjin1.";
/** The binary format version inside the token. */
export const TOKEN_FORMAT_VERSION = 1;
/** Most issuer endpoints in one token. */
export const MAX_TOKEN_ENDPOINTS = 4;
/** Bytes of sha256 kept as the token's checksum. */
export const TOKEN_CHECKSUM_BYTES = 4;
/** Bytes in the issuer key digest (sha256). */
export const ISSUER_DIGEST_BYTES = 32;
/** Fewest bytes a token can have: one endpoint of one byte. */
export const MIN_TOKEN_BYTES =
  1 + 2 + (2 + 1) + ISSUER_DIGEST_BYTES + TOKEN_ID_BYTES + TOKEN_SECRET_BYTES + TOKEN_CHECKSUM_BYTES;
/** Most bytes a token can have: MAX_TOKEN_ENDPOINTS endpoints of MAX_ADDR_BYTES each. */
export const MAX_TOKEN_BYTES =
  1 +
  2 +
  MAX_TOKEN_ENDPOINTS * (2 + MAX_ADDR_BYTES) +
  ISSUER_DIGEST_BYTES +
  TOKEN_ID_BYTES +
  TOKEN_SECRET_BYTES +
  TOKEN_CHECKSUM_BYTES;
/** Longest token string accepted (prefix + base64url of MAX_TOKEN_BYTES), checked before decoding. */
export const MAX_TOKEN_CHARS = TOKEN_PREFIX.length + Math.ceil((MAX_TOKEN_BYTES * 4) / 3);

/** Longest input decodeJoinToken looks at, surrounding whitespace included; checked before trimming. */
export const MAX_TOKEN_INPUT_CHARS = MAX_TOKEN_CHARS + 256;

/** A decoded join token. `secret` is the only secret part: never log it. */
export interface JoinToken {
  /** Where to reach the issuer, in order of preference. */
  readonly endpoints: readonly string[];
  /** sha256 of the issuer's public key. */
  readonly issuerDigest: Uint8Array;
  /** `ed25519:` + base32(issuerDigest): compare with protocol's fingerprint(issuerKey). */
  readonly issuerFingerprint: string;
  /** TOKEN_ID_BYTES naming the token at the issuer. */
  readonly tokenId: Uint8Array;
  /** TOKEN_SECRET_BYTES; the joiner proves it holds it with joinMac. */
  readonly secret: Uint8Array;
}

/** What encodeJoinToken needs. */
export interface JoinTokenParts {
  readonly endpoints: readonly string[];
  readonly issuerKey: PublicKey;
  readonly tokenId: Uint8Array;
  readonly secret: Uint8Array;
}

const BASE64URL = /^[A-Za-z0-9_-]*$/;
// Whitespace and control characters would break the one-line, copy-pasteable form.
// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
const BAD_ENDPOINT_CHARS = /[\s\u0000-\u001f\u007f]/;
const HOW_TO_FIX = "copy the whole line printed by `ringctl token create`, or ask for a new token";

/** Why an endpoint string cannot go in a token, or undefined when it can. */
function endpointProblem(endpoint: string): string | undefined {
  const bytes = new TextEncoder().encode(endpoint).length;
  if (bytes === 0) return "an endpoint is empty";
  if (bytes > MAX_ADDR_BYTES) return `an endpoint is ${bytes} bytes (at most ${MAX_ADDR_BYTES})`;
  if (BAD_ENDPOINT_CHARS.test(endpoint)) return "an endpoint contains whitespace or a control character";
  return undefined;
}

function checksum(body: Uint8Array): Uint8Array {
  return sha256(body).subarray(0, TOKEN_CHECKSUM_BYTES);
}

/** Encode a token as its one-line string. Throws TokenFieldError on parts it could not decode back. */
export function encodeJoinToken(parts: JoinTokenParts): string {
  const { endpoints, issuerKey, tokenId, secret } = parts;
  if (endpoints.length === 0 || endpoints.length > MAX_TOKEN_ENDPOINTS)
    throw new TokenFieldError(`a token names 1 to ${MAX_TOKEN_ENDPOINTS} endpoints, got ${endpoints.length}`);
  for (const e of endpoints) {
    const problem = endpointProblem(e);
    if (problem !== undefined) throw new TokenFieldError(`cannot encode token: ${problem}`);
  }
  if (tokenId.length !== TOKEN_ID_BYTES || secret.length !== TOKEN_SECRET_BYTES)
    throw new TokenFieldError("cannot encode token: token id or secret has the wrong length");
  const w = new Writer(MIN_TOKEN_BYTES + 64)
    .u8(TOKEN_FORMAT_VERSION)
    .list(endpoints, MAX_TOKEN_ENDPOINTS, (ww, e) => ww.string(e, MAX_ADDR_BYTES))
    .fixed(sha256(issuerKey), ISSUER_DIGEST_BYTES)
    .fixed(tokenId, TOKEN_ID_BYTES)
    .fixed(secret, TOKEN_SECRET_BYTES);
  const body = w.finish();
  const all = new Uint8Array(body.length + TOKEN_CHECKSUM_BYTES);
  all.set(body, 0);
  all.set(checksum(body), body.length);
  return TOKEN_PREFIX + Buffer.from(all).toString("base64url");
}

/** The token's bytes from its string form: prefix, length and strict base64url checked. */
function tokenBytes(input: string): Uint8Array {
  if (input.length > MAX_TOKEN_INPUT_CHARS)
    throw new TokenTooLongError(
      `input is ${input.length} characters; a join token is at most ${MAX_TOKEN_CHARS}: ${HOW_TO_FIX}`,
    );
  const text = input.trim();
  if (!text.startsWith(TOKEN_PREFIX)) {
    if (/^enjin\d+\./.test(text))
      throw new TokenVersionError(
        `join token is of format "${text.slice(0, text.indexOf(".") + 1)}", this build reads "${TOKEN_PREFIX}": ` +
          "upgrade ringd, or mint the token with a ringctl of the same version",
      );
    throw new ForeignTokenError(
      `this is not an enjin join token (it should start with "${TOKEN_PREFIX}"): ${HOW_TO_FIX}`,
    );
  }
  if (text.length > MAX_TOKEN_CHARS)
    throw new TokenTooLongError(
      `join token is ${text.length} characters, at most ${MAX_TOKEN_CHARS}: ` +
        "two tokens pasted together? " +
        HOW_TO_FIX,
    );
  const body = text.slice(TOKEN_PREFIX.length);
  if (!BASE64URL.test(body) || body.length % 4 === 1)
    throw new TokenEncodingError(`join token contains characters outside base64url: ${HOW_TO_FIX}`);
  const bytes = new Uint8Array(Buffer.from(body, "base64url"));
  // Refuse non-canonical forms (stray bits in the last character) so one token has one spelling.
  if (Buffer.from(bytes).toString("base64url") !== body)
    throw new TokenEncodingError(`join token is not canonical base64url (altered?): ${HOW_TO_FIX}`);
  return bytes;
}

function wrapDecodeError(err: unknown): never {
  if (err instanceof TokenFormatError) throw err;
  if (err instanceof TruncatedError)
    throw new TokenTruncatedError(`join token is cut short (${err.message}): ${HOW_TO_FIX}`, { cause: err });
  if (err instanceof TrailingBytesError)
    throw new TokenTrailingBytesError(`join token has extra bytes at the end: ${HOW_TO_FIX}`, { cause: err });
  if (err instanceof LimitExceededError)
    throw new TokenTooLongError(`join token field too long (${err.message}): ${HOW_TO_FIX}`, { cause: err });
  if (err instanceof InvalidUtf8Error)
    throw new TokenFieldError(`join token endpoint is not UTF-8: ${HOW_TO_FIX}`, { cause: err });
  if (err instanceof DecodeError)
    throw new TokenFormatError(`join token is malformed (${err.message}): ${HOW_TO_FIX}`, { cause: err });
  throw err;
}

/** Decode a token string (surrounding whitespace ignored). Throws a TokenFormatError subclass. */
export function decodeJoinToken(input: string): JoinToken {
  const bytes = tokenBytes(input);
  if (bytes.length > MAX_TOKEN_BYTES)
    throw new TokenTooLongError(
      `join token is ${bytes.length} bytes, at most ${MAX_TOKEN_BYTES}: ${HOW_TO_FIX}`,
    );
  try {
    const r = new Reader(bytes);
    const version = r.u8("token version");
    if (version !== TOKEN_FORMAT_VERSION)
      throw new TokenVersionError(
        `join token format version ${version} is not ${TOKEN_FORMAT_VERSION}: upgrade ringd, or ${HOW_TO_FIX}`,
      );
    const endpoints = r.list(
      MAX_TOKEN_ENDPOINTS,
      (rr) => rr.string(MAX_ADDR_BYTES, "endpoint"),
      2,
      "endpoints",
    );
    const issuerDigest = r.fixed(ISSUER_DIGEST_BYTES, "issuer digest");
    const tokenId = r.fixed(TOKEN_ID_BYTES, "token id");
    const secret = r.fixed(TOKEN_SECRET_BYTES, "secret");
    const bodyLength = r.position();
    const sum = r.fixed(TOKEN_CHECKSUM_BYTES, "checksum");
    r.end("join token");
    const expected = checksum(bytes.subarray(0, bodyLength));
    if (!Buffer.from(sum).equals(Buffer.from(expected)))
      throw new TokenChecksumError(
        `join token checksum does not match (a typo or a changed character): ${HOW_TO_FIX}`,
      );
    if (endpoints.length === 0) throw new TokenFieldError(`join token names no endpoint: ${HOW_TO_FIX}`);
    for (const e of endpoints) {
      const problem = endpointProblem(e);
      if (problem !== undefined) throw new TokenFieldError(`join token is invalid: ${problem}`);
    }
    // Copies, so the token does not pin (or alias) the decoded buffer.
    const digest = Uint8Array.from(issuerDigest);
    return {
      endpoints,
      issuerDigest: digest,
      issuerFingerprint: "ed25519:" + base32(digest),
      tokenId: Uint8Array.from(tokenId),
      secret: Uint8Array.from(secret),
    };
  } catch (err) {
    wrapDecodeError(err);
  }
}
