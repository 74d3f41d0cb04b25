/**
 * The signed envelope: every message enjin sends is one. Layout (v1, big-endian):
 *
 *   0      1        3                  35            39           39+n        39+n+64
 *   +------+--------+------------------+-------------+------------+-----------+
 *   | ver  | type   | sender key (32)  | payload len | payload    | signature |
 *   | u8   | u16    |                  | u32 = n     | n bytes    | 64 bytes  |
 *   +------+--------+------------------+-------------+------------+-----------+
 *
 * The signature covers DOMAIN_TAG || u16 type || payload — the exact bytes received, never a
 * re-encoding. The message id is the first MESSAGE_ID_BYTES of the signature (unique because
 * verification is strict, see keys.ts); `envelopeIdKey` reads it without decoding so duplicates
 * are dropped before any signature check.
 */
import {
  BadSignatureError,
  EncodeError,
  LimitExceededError,
  TrailingBytesError,
  TruncatedError,
  UnknownTypeError,
  UnsupportedVersionError,
} from "./errors.ts";
import { type Identity, sign, verifyDetached } from "./keys.ts";
import {
  ENVELOPE_HEADER_BYTES,
  MAX_ENVELOPE_BYTES,
  MAX_PAYLOAD_BYTES,
  MESSAGE_ID_BYTES,
  PROTOCOL_VERSION,
  PROTOCOL_VERSION_MAX,
  PROTOCOL_VERSION_MIN,
  PUBLIC_KEY_BYTES,
  SIGNATURE_BYTES,
} from "./limits.ts";
import { type Envelope, MessageType } from "./types.ts";

/** Domain separation for envelope signatures: the ASCII bytes of "enjin/envelope/v1" then a NUL. */
export const DOMAIN_TAG: Uint8Array = new TextEncoder().encode("enjin/envelope/v1\0");

/** Smallest possible envelope: header, empty payload, signature. */
export const MIN_ENVELOPE_BYTES = ENVELOPE_HEADER_BYTES + SIGNATURE_BYTES;

const PAYLOAD_LENGTH_OFFSET = 1 + 2 + PUBLIC_KEY_BYTES;

const knownTypes: ReadonlySet<number> = new Set(Object.values(MessageType));

/** True when `type` is in the append-only list of types.ts. */
export function isMessageType(type: number): type is MessageType {
  return knownTypes.has(type);
}

/** The bytes a signature covers: DOMAIN_TAG || u16 type || payload. */
export function signedMessage(type: MessageType, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(DOMAIN_TAG.length + 2 + payload.length);
  out.set(DOMAIN_TAG, 0);
  out[DOMAIN_TAG.length] = type >>> 8;
  out[DOMAIN_TAG.length + 1] = type & 0xff;
  out.set(payload, DOMAIN_TAG.length + 2);
  return out;
}

/** Sign `payload` as `type` with `identity` and return the whole envelope's bytes. */
export function sealEnvelope(identity: Identity, type: MessageType, payload: Uint8Array): Uint8Array {
  if (!isMessageType(type)) throw new EncodeError(`unknown message type ${type}`);
  if (payload.length > MAX_PAYLOAD_BYTES) {
    throw new EncodeError(`payload of ${payload.length} bytes exceeds ${MAX_PAYLOAD_BYTES}`);
  }
  if (identity.publicKey.length !== PUBLIC_KEY_BYTES) throw new EncodeError("public key must be 32 bytes");
  const signature = sign(identity.secretKey, signedMessage(type, payload));
  const out = new Uint8Array(ENVELOPE_HEADER_BYTES + payload.length + SIGNATURE_BYTES);
  const view = new DataView(out.buffer);
  view.setUint8(0, PROTOCOL_VERSION);
  view.setUint16(1, type);
  out.set(identity.publicKey, 3);
  view.setUint32(PAYLOAD_LENGTH_OFFSET, payload.length);
  out.set(payload, ENVELOPE_HEADER_BYTES);
  out.set(signature, ENVELOPE_HEADER_BYTES + payload.length);
  return out;
}

/**
 * Parse an envelope without verifying it. Fields are views into `bytes`. Throws TruncatedError,
 * LimitExceededError, UnsupportedVersionError, UnknownTypeError or TrailingBytesError.
 */
export function decodeEnvelope(bytes: Uint8Array): Envelope {
  if (bytes.length > MAX_ENVELOPE_BYTES) {
    throw new LimitExceededError(`envelope of ${bytes.length} bytes exceeds ${MAX_ENVELOPE_BYTES}`);
  }
  if (bytes.length < 1) throw new TruncatedError("envelope: empty");
  const version = bytes[0]!;
  if (version < PROTOCOL_VERSION_MIN || version > PROTOCOL_VERSION_MAX) {
    throw new UnsupportedVersionError(`envelope version ${version}`);
  }
  if (bytes.length < MIN_ENVELOPE_BYTES) {
    throw new TruncatedError(`envelope: ${bytes.length} bytes, need at least ${MIN_ENVELOPE_BYTES}`);
  }
  // Fields read byte by byte: a DataView per envelope was a tenth of decoding's cost.
  const type = (bytes[1]! << 8) | bytes[2]!;
  if (!isMessageType(type)) throw new UnknownTypeError(`message type ${type}`);
  const payloadLength = readU32(bytes, PAYLOAD_LENGTH_OFFSET);
  if (payloadLength > MAX_PAYLOAD_BYTES) {
    throw new LimitExceededError(`payload of ${payloadLength} bytes exceeds ${MAX_PAYLOAD_BYTES}`);
  }
  const end = ENVELOPE_HEADER_BYTES + payloadLength + SIGNATURE_BYTES;
  if (end > bytes.length) throw new TruncatedError(`envelope: declares ${end} bytes, has ${bytes.length}`);
  if (end < bytes.length) throw new TrailingBytesError(`envelope: ${bytes.length - end} trailing bytes`);
  const signatureAt = ENVELOPE_HEADER_BYTES + payloadLength;
  return {
    version,
    type,
    sender: bytes.subarray(3, 3 + PUBLIC_KEY_BYTES),
    payload: bytes.subarray(ENVELOPE_HEADER_BYTES, signatureAt),
    signature: bytes.subarray(signatureAt, end),
    bytes,
  };
}

/** Strictly verify the envelope's signature by its sender over (DOMAIN_TAG, type, payload). */
export function verifyEnvelope(env: Envelope): boolean {
  const n = DOMAIN_TAG.length + 2 + env.payload.length;
  // The signed bytes are built in a reused buffer: verification is the hot path, and allocating a
  // fresh copy per envelope cost ~1% of a verify. Safe because verifyDetached is synchronous and
  // keeps no reference to the message.
  if (verifyScratch.length < n) {
    verifyScratch = new Uint8Array(Math.max(n, 2 * verifyScratch.length));
    verifyScratch.set(DOMAIN_TAG, 0);
  }
  verifyScratch[DOMAIN_TAG.length] = env.type >>> 8;
  verifyScratch[DOMAIN_TAG.length + 1] = env.type & 0xff;
  verifyScratch.set(env.payload, DOMAIN_TAG.length + 2);
  return verifyDetached(env.signature, verifyScratch.subarray(0, n), env.sender);
}

/** verifyEnvelope's reusable buffer for the signed bytes; starts with the domain tag in place. */
let verifyScratch: Uint8Array = signedMessage(
  MessageType.Announce,
  new Uint8Array(1024 - DOMAIN_TAG.length - 2),
);

/** Decode and verify in one step; throws BadSignatureError (from errors.ts) when it does not verify. */
export function openEnvelope(bytes: Uint8Array): Envelope {
  const env = decodeEnvelope(bytes);
  if (!verifyEnvelope(env)) throw new BadSignatureError("envelope signature does not verify");
  return env;
}

/** Big-endian u32 at `at` (the caller has checked that four bytes are there). */
function readU32(bytes: Uint8Array, at: number): number {
  return ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>> 0;
}

/** Offset of the signature if `bytes` is a well-formed envelope by length, else -1. No allocation. */
function signatureOffset(bytes: Uint8Array): number {
  const n = bytes.length;
  if (n < MIN_ENVELOPE_BYTES || n > MAX_ENVELOPE_BYTES) return -1;
  const version = bytes[0]!;
  if (version < PROTOCOL_VERSION_MIN || version > PROTOCOL_VERSION_MAX) return -1;
  const payloadLength = readU32(bytes, PAYLOAD_LENGTH_OFFSET);
  if (ENVELOPE_HEADER_BYTES + payloadLength + SIGNATURE_BYTES !== n) return -1;
  return ENVELOPE_HEADER_BYTES + payloadLength;
}

/**
 * The message id of an envelope (first MESSAGE_ID_BYTES of its signature) as a 16-char latin1
 * string, read WITHOUT decoding or verifying: the dedup key checked before any signature work.
 * Returns null if the bytes are not an envelope by length or version.
 */
export function envelopeIdKey(bytes: Uint8Array): string | null {
  const o = signatureOffset(bytes);
  if (o < 0) return null;
  return String.fromCharCode(
    bytes[o]!,
    bytes[o + 1]!,
    bytes[o + 2]!,
    bytes[o + 3]!,
    bytes[o + 4]!,
    bytes[o + 5]!,
    bytes[o + 6]!,
    bytes[o + 7]!,
    bytes[o + 8]!,
    bytes[o + 9]!,
    bytes[o + 10]!,
    bytes[o + 11]!,
    bytes[o + 12]!,
    bytes[o + 13]!,
    bytes[o + 14]!,
    bytes[o + 15]!,
  );
}

/**
 * The message type an envelope declares, read without decoding or verifying (so not to be trusted
 * for anything but ordering work); null when the bytes are not an envelope by length or version, or
 * the type is not one of types.ts.
 */
export function peekEnvelopeType(bytes: Uint8Array): MessageType | null {
  if (signatureOffset(bytes) < 0) return null;
  const type = (bytes[1]! << 8) | bytes[2]!;
  return isMessageType(type) ? type : null;
}

/** The message id as bytes (a view into `bytes`), for Digest/Want; null if malformed. */
export function messageIdBytes(bytes: Uint8Array): Uint8Array | null {
  const o = signatureOffset(bytes);
  if (o < 0) return null;
  return bytes.subarray(o, o + MESSAGE_ID_BYTES);
}

/** The same latin1 key as envelopeIdKey, from id bytes (e.g. received in a Digest or Want). */
export function messageIdKey(id: Uint8Array): string {
  if (id.length !== MESSAGE_ID_BYTES) throw new EncodeError(`message id must be ${MESSAGE_ID_BYTES} bytes`);
  let s = "";
  for (let i = 0; i < MESSAGE_ID_BYTES; i++) s += String.fromCharCode(id[i]!);
  return s;
}

/** Inverse of messageIdKey: a 16-char latin1 key back to id bytes. */
export function messageIdFromKey(key: string): Uint8Array {
  if (key.length !== MESSAGE_ID_BYTES)
    throw new EncodeError(`message id key must be ${MESSAGE_ID_BYTES} chars`);
  const out = new Uint8Array(MESSAGE_ID_BYTES);
  for (let i = 0; i < MESSAGE_ID_BYTES; i++) out[i] = key.charCodeAt(i) & 0xff;
  return out;
}
