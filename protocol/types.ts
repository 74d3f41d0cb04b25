/**
 * The decoded shapes of everything enjin says on the wire. Codecs for each live beside it in
 * `protocol/`; the byte layouts are drawn in docs/PROTOCOL.md. This file only names things.
 */

/** A node's or operator's ed25519 public key: 32 bytes. It is also the key id on the wire. */
export type PublicKey = Uint8Array;

/** Rings: 0 meta, 1 infrastructure, 2 platform. */
export type Ring = 0 | 1 | 2;

/**
 * Message types: an APPEND-ONLY list. Never renumber, never reuse a number; a new type gets the next
 * number and a line saying which protocol version added it.
 */
export const MessageType = {
  /** v1: a certificate (announcement) binding a key to its ring and rights, signed by its issuer. */
  Announce: 1,
  /** v1: a revocation of a key, signed by an issuer with authority over it. */
  Revoke: 2,
  /** v1: SWIM direct probe. */
  Ping: 3,
  /** v1: SWIM indirect probe request. */
  PingReq: 4,
  /** v1: SWIM acknowledgement. */
  Ack: 5,
  /** v1: Lifeguard negative acknowledgement from an indirect prober. */
  Nack: 6,
  /** v1: gossiped suspicion of a member. */
  Suspect: 7,
  /** v1: gossiped liveness (join or refutation), signed by the member itself. */
  Alive: 8,
  /** v1: gossiped declaration that a member is dead (or left). */
  Dead: 9,
  /** v1: an application broadcast: topic + data. */
  Broadcast: 10,
  /** v1: a signed operator command. */
  Command: 11,
  /** v1: a node's signed result for a command. */
  Result: 12,
  /** v1: join request (token proof + joiner key). */
  JoinRequest: 13,
  /** v1: join response (certificate + trust bundle). */
  JoinResponse: 14,
  /** v1: anti-entropy digest: ids of recent broadcasts the sender holds. */
  Digest: 15,
  /** v1: anti-entropy request for the envelopes with the given ids. */
  Want: 16,
  /**
   * v1, added with membership sync: the death and leave notices the sender holds, by member and
   * incarnation. A build without it refuses it as `unknown-type`, which only leaves it out of syncs.
   */
  MemberDigest: 17,
  /** v1, added with membership sync: the notices of a MemberDigest that the sender lacks. */
  MemberWant: 18,
} as const;
/** A number from the MessageType list. */
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

/** A decoded envelope. `signedBytes` and `signature` are views into the received buffer. */
export interface Envelope {
  readonly version: number;
  readonly type: MessageType;
  /** The sender's public key (its key id). */
  readonly sender: PublicKey;
  /** The exact payload bytes received; signatures cover these, never a re-encoding. */
  readonly payload: Uint8Array;
  readonly signature: Uint8Array;
  /** The whole envelope as received (for forwarding without re-encoding). */
  readonly bytes: Uint8Array;
}

/** Rights a certificate grants. Roles are a closed list. */
export type Role = "node" | "issuer" | "admin" | "operator" | "viewer";

/** A certificate ("announcement"). Times are milliseconds since the epoch, given by the caller. */
export interface Certificate {
  readonly subject: PublicKey;
  readonly issuer: PublicKey;
  readonly ring: Ring;
  readonly roles: readonly Role[];
  /** Locality path, outermost first, e.g. ["eu", "dc1", "rack3"]; [] is everywhere. */
  readonly compartment: readonly string[];
  readonly tiers: readonly string[];
  readonly serial: number;
  readonly notBeforeMs: number;
  readonly expiresMs: number;
}

/** A revocation of `subject`; `epoch` orders revocations from one issuer. */
export interface Revocation {
  readonly subject: PublicKey;
  readonly issuer: PublicKey;
  readonly epoch: number;
  readonly atMs: number;
  readonly reason: string;
}

/** SWIM direct probe of `target`; `seq` pairs it with its Ack. */
export interface Ping {
  readonly seq: number;
  readonly target: PublicKey;
}
/** Ask the receiver to probe `target` on the sender's behalf. */
export interface PingReq {
  readonly seq: number;
  readonly target: PublicKey;
}
/** Answer to a Ping or PingReq for `target` with the same `seq`. */
export interface Ack {
  readonly seq: number;
  readonly target: PublicKey;
}
/** Lifeguard: the indirect prober got no answer from `target` (it is alive itself). */
export interface Nack {
  readonly seq: number;
  readonly target: PublicKey;
}
/** `node` is suspected at `incarnation`; it refutes with a higher Alive. */
export interface Suspect {
  readonly node: PublicKey;
  readonly incarnation: number;
}
/** `node` is alive at `incarnation` (join or refutation), signed by the node itself. */
export interface Alive {
  readonly node: PublicKey;
  readonly incarnation: number;
  /** Transport address at which the node is reached. */
  readonly addr: string;
}
/** `node` is declared dead (or left) at `incarnation`. */
export interface Dead {
  readonly node: PublicKey;
  readonly incarnation: number;
}
/** An application broadcast on `topic`. */
export interface Broadcast {
  readonly topic: string;
  readonly data: Uint8Array;
  /**
   * When the origin sent it (ms since the epoch). Receivers refuse a broadcast older than their
   * seen-set remembers, so a replay is either dropped as a duplicate or refused as stale.
   */
  readonly sentAtMs: number;
}
/** Ids of recent broadcasts the sender holds; ids are MESSAGE_ID_BYTES long (see limits.ts). */
export interface Digest {
  readonly ids: readonly Uint8Array[];
}
/** Ask for the envelopes with these ids (after a Digest). */
export interface Want {
  readonly ids: readonly Uint8Array[];
}

/** A member and the incarnation at which a node holds a signed notice of its death (or leave). */
export interface NoticeEntry {
  readonly node: PublicKey;
  readonly incarnation: number;
}
/**
 * Membership sync: the death and leave notices (Dead envelopes) the sender holds for members it
 * holds dead or gone. A summary gives only their number and `noticeSetHash`; a full digest lists
 * them too, sorted by key, ascending, without repeats.
 */
export interface MemberDigest {
  /** True when the entries are left out: `held` and `hash` speak for the set. */
  readonly summary: boolean;
  /**
   * True when the sender holds more than one digest carries: the entries then speak only for the
   * keys from the first entry's to the last's, inclusive. Never with `summary`.
   */
  readonly partial: boolean;
  /** How many notices the sender holds in all. */
  readonly held: number;
  /** `noticeSetHash` of all of them (NOTICE_SET_HASH_BYTES). */
  readonly hash: Uint8Array;
  readonly entries: readonly NoticeEntry[];
}
/** Membership sync: the entries of the peer's MemberDigest whose notices the sender lacks. */
export interface MemberWant {
  readonly entries: readonly NoticeEntry[];
}

/**
 * Which nodes a command targets. Every present field must match (AND); an absent field matches all.
 * New fields must be optional, so that an older agent reading a newer selector still refuses
 * nothing it understands.
 */
export interface Selector {
  /** Only nodes of this ring. */
  readonly ring?: Ring;
  /** Only these node keys. */
  readonly nodes?: readonly PublicKey[];
  /** Only nodes whose compartment starts with this path. */
  readonly compartment?: readonly string[];
  /** Only nodes carrying at least one of these tiers (OR). */
  readonly tiers?: readonly string[];
  /** Only nodes carrying every one of these tiers (AND). */
  readonly labels?: readonly string[];
}

/** An operator's command, signed by the operator's key and relayed unchanged. */
export interface Command {
  readonly selector: Selector;
  /** What to do, a label such as "exec" or "restart". */
  readonly action: string;
  readonly args: readonly string[];
  /** NONCE_BYTES random bytes, so two identical commands have distinct ids. */
  readonly nonce: Uint8Array;
  readonly issuedAtMs: number;
  /** Agents refuse the command at or after this time, and keep its id in the seen-set until then. */
  readonly expiresMs: number;
}

/** A node's answer to a command, signed by the node. */
export interface Result {
  /** The command envelope's message id (MESSAGE_ID_BYTES). */
  readonly commandId: Uint8Array;
  readonly exitCode: number;
  readonly stdout: Uint8Array;
  readonly stderr: Uint8Array;
  /** True when stdout or stderr was cut to fit MAX_OUTPUT_BYTES. */
  readonly truncated: boolean;
}

/** A joiner's proof that it holds a token secret, without sending the secret. */
export interface JoinRequest {
  /** TOKEN_ID_BYTES naming the token. */
  readonly tokenId: Uint8Array;
  /** The key the joiner made for itself (also the envelope sender). */
  readonly joinerKey: PublicKey;
  /** MAC_BYTES: joinMac(secret, tokenId, joinerKey). */
  readonly mac: Uint8Array;
  /** The name the joiner asks for, a label. */
  readonly name: string;
}

/** The issuer's answer to a JoinRequest: the joiner's certificate and the trust bundle. */
export interface JoinResponse {
  /** The joiner's certificate: an Announce envelope signed by the issuer. */
  readonly certificate: Uint8Array;
  /** Announce envelopes from the root-most down to the issuer's own certificate. */
  readonly chain: readonly Uint8Array[];
  /** Revoke envelopes currently in force. */
  readonly revocations: readonly Uint8Array[];
  /** Members known alive at the time of joining. */
  readonly members: readonly Alive[];
  /** Transport addresses to contact first. */
  readonly peers: readonly string[];
  /** The ring's channel secrets, sealed to the joiner's key (opaque here). */
  readonly sealedSecrets: Uint8Array;
  /**
   * Announce envelopes of the mesh's other members and operators (the trust bundle), each checked
   * by the joiner against its chain on first use. Bounded by MAX_BUNDLE_ENVELOPES; a larger mesh
   * leaves the rest to gossip.
   */
  readonly certificates: readonly Uint8Array[];
}
