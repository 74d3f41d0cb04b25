/**
 * Payload codecs for every MessageType, on top of codec.ts. Layouts are drawn in docs/PROTOCOL.md;
 * conventions: integers big-endian, `str` = u16 length + UTF-8, `bytes` = u32 length + bytes,
 * `list` = u16 count + items, keys are 32 raw bytes, ids 16 raw bytes.
 *
 * `decodePayload` checks sizes while reading (codec.ts), refuses trailing bytes, then validates the
 * value with the schema of its type (schema.ts). `encodePayload` validates first, so we never sign
 * what a peer would refuse. A new field is appended at the end, optional, and written only in
 * envelopes of the protocol version that added it.
 */
import { Reader, Writer } from "./codec.ts";
import { sealEnvelope } from "./envelope.ts";
import { EncodeError, SchemaError, UnknownTypeError } from "./errors.ts";
import { type Identity, sha256 } from "./keys.ts";
import {
  MAC_BYTES,
  MAX_ADDR_BYTES,
  MAX_ARG_BYTES,
  MAX_BUNDLE_ENVELOPES,
  MAX_BUNDLE_MEMBERS,
  MAX_COMMAND_ARGS,
  MAX_COMPARTMENT_DEPTH,
  MAX_DIGEST_IDS,
  MAX_ENVELOPE_BYTES,
  MAX_LABEL_BYTES,
  MAX_OUTPUT_BYTES,
  MAX_PAYLOAD_BYTES,
  MAX_REASON_BYTES,
  MAX_ROLES,
  MAX_SEALED_BYTES,
  MAX_SELECTOR_NODES,
  MAX_SYNC_DIGEST_ENTRIES,
  MAX_SYNC_WANT_ENTRIES,
  MAX_TIERS,
  MAX_TOPIC_BYTES,
  MESSAGE_ID_BYTES,
  NONCE_BYTES,
  NOTICE_SET_HASH_BYTES,
  PUBLIC_KEY_BYTES,
  TOKEN_ID_BYTES,
} from "./limits.ts";
import { validatePayload } from "./schema.ts";
import {
  type Ack,
  type Alive,
  type Broadcast,
  type Certificate,
  type Command,
  type Dead,
  type Digest,
  type JoinRequest,
  type JoinResponse,
  type MemberDigest,
  type MemberWant,
  MessageType,
  type Nack,
  type NoticeEntry,
  type Ping,
  type PingReq,
  type Result,
  type Revocation,
  type Role,
  type Selector,
  type Suspect,
  type Want,
} from "./types.ts";

/** The decoded payload type of each message type. */
export interface PayloadMap {
  [MessageType.Announce]: Certificate;
  [MessageType.Revoke]: Revocation;
  [MessageType.Ping]: Ping;
  [MessageType.PingReq]: PingReq;
  [MessageType.Ack]: Ack;
  [MessageType.Nack]: Nack;
  [MessageType.Suspect]: Suspect;
  [MessageType.Alive]: Alive;
  [MessageType.Dead]: Dead;
  [MessageType.Broadcast]: Broadcast;
  [MessageType.Command]: Command;
  [MessageType.Result]: Result;
  [MessageType.JoinRequest]: JoinRequest;
  [MessageType.JoinResponse]: JoinResponse;
  [MessageType.Digest]: Digest;
  [MessageType.Want]: Want;
  [MessageType.MemberDigest]: MemberDigest;
  [MessageType.MemberWant]: MemberWant;
}
/** The payload of message type `T`. */
export type PayloadOf<T extends MessageType> = PayloadMap[T];
/** Any decoded payload, tagged with its type. */
export type AnyPayload = { [T in MessageType]: { type: T; value: PayloadOf<T> } }[MessageType];

interface PayloadCodec<V> {
  write(w: Writer, value: V): void;
  read(r: Reader): V;
}

const key = (r: Reader) => r.fixed(PUBLIC_KEY_BYTES, "key");
const id = (r: Reader) => r.fixed(MESSAGE_ID_BYTES, "message id");
const writeKey = (w: Writer, k: Uint8Array) => w.fixed(k, PUBLIC_KEY_BYTES);
const writeId = (w: Writer, i: Uint8Array) => w.fixed(i, MESSAGE_ID_BYTES);
const label = (r: Reader) => r.string(MAX_LABEL_BYTES, "label");
const writeLabel = (w: Writer, s: string) => w.string(s, MAX_LABEL_BYTES);
const envelopeBytes = (r: Reader) => r.bytes(MAX_ENVELOPE_BYTES, "envelope");
const writeEnvelopeBytes = (w: Writer, b: Uint8Array) => w.bytes(b, MAX_ENVELOPE_BYTES);
const addr = (r: Reader) => r.string(MAX_ADDR_BYTES, "addr");
const writeAddr = (w: Writer, s: string) => w.string(s, MAX_ADDR_BYTES);

function bool(r: Reader, what: string): boolean {
  const b = r.u8(what);
  if (b > 1) throw new SchemaError(`${what}: boolean byte ${b}`);
  return b === 1;
}

const probe: PayloadCodec<Ping> = {
  write: (w, p) => writeKey(w.u32(p.seq), p.target),
  read: (r) => ({ seq: r.u32("seq"), target: key(r) }),
};
const nodeIncarnation: PayloadCodec<Suspect> = {
  write: (w, p) => writeKey(w, p.node).u64(p.incarnation),
  read: (r) => ({ node: key(r), incarnation: r.u64("incarnation") }),
};
const alive: PayloadCodec<Alive> = {
  write: (w, p) => writeAddr(writeKey(w, p.node).u64(p.incarnation), p.addr),
  read: (r) => ({ node: key(r), incarnation: r.u64("incarnation"), addr: addr(r) }),
};
const ids: PayloadCodec<Digest> = {
  write: (w, p) => w.list(p.ids, MAX_DIGEST_IDS, writeId),
  read: (r) => ({ ids: r.list(MAX_DIGEST_IDS, id, MESSAGE_ID_BYTES, "ids") }),
};
/** A NoticeEntry: key, then u64 incarnation (40 bytes). */
const NOTICE_ENTRY_BYTES = PUBLIC_KEY_BYTES + 8;
const writeNoticeEntry = (w: Writer, e: NoticeEntry) => writeKey(w, e.node).u64(e.incarnation);
const noticeEntry = (r: Reader): NoticeEntry => ({ node: key(r), incarnation: r.u64("incarnation") });
/** MemberDigest flag bits; unknown bits are refused. */
const DIGEST_PARTIAL = 1;
const DIGEST_SUMMARY = 2;
const memberDigest: PayloadCodec<MemberDigest> = {
  write: (w, d) =>
    w
      .u8((d.partial ? DIGEST_PARTIAL : 0) | (d.summary ? DIGEST_SUMMARY : 0))
      .u32(d.held)
      .fixed(d.hash, NOTICE_SET_HASH_BYTES)
      .list(d.entries, MAX_SYNC_DIGEST_ENTRIES, writeNoticeEntry),
  read: (r) => {
    const flags = r.u8("digest flags");
    if ((flags & ~(DIGEST_PARTIAL | DIGEST_SUMMARY)) !== 0)
      throw new SchemaError(`digest: unknown flags ${flags}`);
    return {
      partial: (flags & DIGEST_PARTIAL) !== 0,
      summary: (flags & DIGEST_SUMMARY) !== 0,
      held: r.u32("held"),
      hash: r.fixed(NOTICE_SET_HASH_BYTES, "hash"),
      entries: r.list(MAX_SYNC_DIGEST_ENTRIES, noticeEntry, NOTICE_ENTRY_BYTES, "entries"),
    };
  },
};

/** Domain tag of `noticeSetHash`. */
const NOTICE_SET_TAG = new TextEncoder().encode("enjin/notice-set/v1\0");

/**
 * The MemberDigest hash of a set of notice entries: the first NOTICE_SET_HASH_BYTES of
 * sha256("enjin/notice-set/v1" 0x00 || each entry as key 32 || incarnation u64), entries sorted by
 * key. Two nodes holding the same notices (member and incarnation) get the same hash.
 */
export function noticeSetHash(entries: readonly NoticeEntry[]): Uint8Array {
  const w = new Writer();
  w.fixed(NOTICE_SET_TAG, NOTICE_SET_TAG.length);
  for (const e of entries) writeNoticeEntry(w, e);
  return sha256(w.finish()).subarray(0, NOTICE_SET_HASH_BYTES);
}
const memberWant: PayloadCodec<MemberWant> = {
  write: (w, d) => w.list(d.entries, MAX_SYNC_WANT_ENTRIES, writeNoticeEntry),
  read: (r) => ({ entries: r.list(MAX_SYNC_WANT_ENTRIES, noticeEntry, NOTICE_ENTRY_BYTES, "entries") }),
};

const certificate: PayloadCodec<Certificate> = {
  write: (w, c) => {
    writeKey(writeKey(w, c.subject), c.issuer).u8(c.ring);
    w.list(c.roles, MAX_ROLES, writeLabel);
    w.list(c.compartment, MAX_COMPARTMENT_DEPTH, writeLabel);
    w.list(c.tiers, MAX_TIERS, writeLabel);
    w.u64(c.serial).u64(c.notBeforeMs).u64(c.expiresMs);
  },
  read: (r) => ({
    subject: key(r),
    issuer: key(r),
    ring: r.u8("ring") as Certificate["ring"],
    roles: r.list(MAX_ROLES, label, 2, "roles") as Role[],
    compartment: r.list(MAX_COMPARTMENT_DEPTH, label, 2, "compartment"),
    tiers: r.list(MAX_TIERS, label, 2, "tiers"),
    serial: r.u64("serial"),
    notBeforeMs: r.u64("notBeforeMs"),
    expiresMs: r.u64("expiresMs"),
  }),
};

const revocation: PayloadCodec<Revocation> = {
  write: (w, v) =>
    writeKey(writeKey(w, v.subject), v.issuer).u64(v.epoch).u64(v.atMs).string(v.reason, MAX_REASON_BYTES),
  read: (r) => ({
    subject: key(r),
    issuer: key(r),
    epoch: r.u64("epoch"),
    atMs: r.u64("atMs"),
    reason: r.string(MAX_REASON_BYTES, "reason"),
  }),
};

const broadcast: PayloadCodec<Broadcast> = {
  write: (w, b) => w.string(b.topic, MAX_TOPIC_BYTES).bytes(b.data, MAX_PAYLOAD_BYTES).u64(b.sentAtMs),
  read: (r) => ({
    topic: r.string(MAX_TOPIC_BYTES, "topic"),
    data: r.bytes(MAX_PAYLOAD_BYTES, "data"),
    sentAtMs: r.u64("sentAtMs"),
  }),
};

/** Selector presence bits, in field order. Unknown bits are refused. */
const SEL_RING = 1;
const SEL_NODES = 2;
const SEL_COMPARTMENT = 4;
const SEL_TIERS = 8;
const SEL_LABELS = 16;
const SEL_KNOWN = SEL_RING | SEL_NODES | SEL_COMPARTMENT | SEL_TIERS | SEL_LABELS;

function writeSelector(w: Writer, s: Selector): void {
  const bits =
    (s.ring !== undefined ? SEL_RING : 0) |
    (s.nodes !== undefined ? SEL_NODES : 0) |
    (s.compartment !== undefined ? SEL_COMPARTMENT : 0) |
    (s.tiers !== undefined ? SEL_TIERS : 0) |
    (s.labels !== undefined ? SEL_LABELS : 0);
  w.u8(bits);
  if (s.ring !== undefined) w.u8(s.ring);
  if (s.nodes !== undefined) w.list(s.nodes, MAX_SELECTOR_NODES, writeKey);
  if (s.compartment !== undefined) w.list(s.compartment, MAX_COMPARTMENT_DEPTH, writeLabel);
  if (s.tiers !== undefined) w.list(s.tiers, MAX_TIERS, writeLabel);
  if (s.labels !== undefined) w.list(s.labels, MAX_TIERS, writeLabel);
}

function readSelector(r: Reader): Selector {
  const bits = r.u8("selector bits");
  if ((bits & ~SEL_KNOWN) !== 0) throw new SchemaError(`selector: unknown presence bits ${bits}`);
  const s: { -readonly [K in keyof Selector]: Selector[K] } = {};
  if (bits & SEL_RING) s.ring = r.u8("selector ring") as Selector["ring"];
  if (bits & SEL_NODES) s.nodes = r.list(MAX_SELECTOR_NODES, key, PUBLIC_KEY_BYTES, "selector nodes");
  if (bits & SEL_COMPARTMENT) s.compartment = r.list(MAX_COMPARTMENT_DEPTH, label, 2, "selector compartment");
  if (bits & SEL_TIERS) s.tiers = r.list(MAX_TIERS, label, 2, "selector tiers");
  if (bits & SEL_LABELS) s.labels = r.list(MAX_TIERS, label, 2, "selector labels");
  return s;
}

const command: PayloadCodec<Command> = {
  write: (w, c) => {
    writeSelector(w, c.selector);
    writeLabel(w, c.action);
    w.list(c.args, MAX_COMMAND_ARGS, (w2, a) => w2.string(a, MAX_ARG_BYTES));
    w.fixed(c.nonce, NONCE_BYTES).u64(c.issuedAtMs).u64(c.expiresMs);
  },
  read: (r) => ({
    selector: readSelector(r),
    action: label(r),
    args: r.list(MAX_COMMAND_ARGS, (r2) => r2.string(MAX_ARG_BYTES, "arg"), 2, "args"),
    nonce: r.fixed(NONCE_BYTES, "nonce"),
    issuedAtMs: r.u64("issuedAtMs"),
    expiresMs: r.u64("expiresMs"),
  }),
};

const result: PayloadCodec<Result> = {
  write: (w, x) =>
    writeId(w, x.commandId)
      .i32(x.exitCode)
      .bytes(x.stdout, MAX_OUTPUT_BYTES)
      .bytes(x.stderr, MAX_OUTPUT_BYTES)
      .u8(x.truncated ? 1 : 0),
  read: (r) => ({
    commandId: id(r),
    exitCode: r.i32("exitCode"),
    stdout: r.bytes(MAX_OUTPUT_BYTES, "stdout"),
    stderr: r.bytes(MAX_OUTPUT_BYTES, "stderr"),
    truncated: bool(r, "truncated"),
  }),
};

const joinRequest: PayloadCodec<JoinRequest> = {
  write: (w, j) =>
    writeLabel(writeKey(w.fixed(j.tokenId, TOKEN_ID_BYTES), j.joinerKey).fixed(j.mac, MAC_BYTES), j.name),
  read: (r) => ({
    tokenId: r.fixed(TOKEN_ID_BYTES, "tokenId"),
    joinerKey: key(r),
    mac: r.fixed(MAC_BYTES, "mac"),
    name: label(r),
  }),
};

const joinResponse: PayloadCodec<JoinResponse> = {
  write: (w, j) => {
    writeEnvelopeBytes(w, j.certificate);
    w.list(j.chain, MAX_BUNDLE_ENVELOPES, writeEnvelopeBytes);
    w.list(j.revocations, MAX_BUNDLE_ENVELOPES, writeEnvelopeBytes);
    w.list(j.members, MAX_BUNDLE_MEMBERS, alive.write);
    w.list(j.peers, MAX_BUNDLE_MEMBERS, writeAddr);
    w.bytes(j.sealedSecrets, MAX_SEALED_BYTES);
    w.list(j.certificates, MAX_BUNDLE_ENVELOPES, writeEnvelopeBytes);
  },
  read: (r) => ({
    certificate: envelopeBytes(r),
    chain: r.list(MAX_BUNDLE_ENVELOPES, envelopeBytes, 4, "chain"),
    revocations: r.list(MAX_BUNDLE_ENVELOPES, envelopeBytes, 4, "revocations"),
    members: r.list(MAX_BUNDLE_MEMBERS, alive.read, PUBLIC_KEY_BYTES + 10, "members"),
    peers: r.list(MAX_BUNDLE_MEMBERS, addr, 2, "peers"),
    sealedSecrets: r.bytes(MAX_SEALED_BYTES, "sealedSecrets"),
    certificates: r.list(MAX_BUNDLE_ENVELOPES, envelopeBytes, 4, "certificates"),
  }),
};

const codecs: { [T in MessageType]: PayloadCodec<PayloadOf<T>> } = {
  [MessageType.Announce]: certificate,
  [MessageType.Revoke]: revocation,
  [MessageType.Ping]: probe,
  [MessageType.PingReq]: probe,
  [MessageType.Ack]: probe,
  [MessageType.Nack]: probe,
  [MessageType.Suspect]: nodeIncarnation,
  [MessageType.Alive]: alive,
  [MessageType.Dead]: nodeIncarnation,
  [MessageType.Broadcast]: broadcast,
  [MessageType.Command]: command,
  [MessageType.Result]: result,
  [MessageType.JoinRequest]: joinRequest,
  [MessageType.JoinResponse]: joinResponse,
  [MessageType.Digest]: ids,
  [MessageType.Want]: ids,
  [MessageType.MemberDigest]: memberDigest,
  [MessageType.MemberWant]: memberWant,
};

/** Validate and encode the payload of `type`; throws EncodeError (cause: SchemaError) if invalid. */
export function encodePayload<T extends MessageType>(type: T, value: PayloadOf<T>): Uint8Array {
  const codec = codecs[type] as PayloadCodec<PayloadOf<T>> | undefined;
  if (codec === undefined) throw new EncodeError(`unknown message type ${type}`);
  try {
    validatePayload(type, value);
  } catch (cause) {
    throw new EncodeError(`refusing to encode an invalid payload of type ${type}`, { cause });
  }
  const w = new Writer();
  codec.write(w, value);
  const out = w.finish();
  if (out.length > MAX_PAYLOAD_BYTES)
    throw new EncodeError(`payload of ${out.length} bytes exceeds ${MAX_PAYLOAD_BYTES}`);
  return out;
}

/**
 * Decode the payload of `type` from `bytes` (byte fields are views into it) and validate it.
 * Throws a DecodeError subclass: TruncatedError, LimitExceededError, InvalidUtf8Error,
 * TrailingBytesError, UnknownTypeError or SchemaError.
 */
export function decodePayload<T extends MessageType>(type: T, bytes: Uint8Array): PayloadOf<T> {
  const codec = codecs[type] as PayloadCodec<PayloadOf<T>> | undefined;
  if (codec === undefined) throw new UnknownTypeError(`message type ${type}`);
  const r = new Reader(bytes);
  const value = codec.read(r);
  r.end(`payload of type ${type}`);
  validatePayload(type, value);
  return value;
}

/** Decode an envelope's payload as a tagged union (for switch statements over the type). */
export function decodeAnyPayload(type: MessageType, bytes: Uint8Array): AnyPayload {
  return { type, value: decodePayload(type, bytes) } as AnyPayload;
}

/** Encode `value` as the payload of `type` and seal it in an envelope signed by `identity`. */
export function sealMessage<T extends MessageType>(
  identity: Identity,
  type: T,
  value: PayloadOf<T>,
): Uint8Array {
  return sealEnvelope(identity, type, encodePayload(type, value));
}
