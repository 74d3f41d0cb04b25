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
} as const;
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

export interface Ping {
  readonly seq: number;
  readonly target: PublicKey;
}
export interface PingReq {
  readonly seq: number;
  readonly target: PublicKey;
}
export interface Ack {
  readonly seq: number;
  readonly target: PublicKey;
}
export interface Nack {
  readonly seq: number;
  readonly target: PublicKey;
}
export interface Suspect {
  readonly node: PublicKey;
  readonly incarnation: number;
}
export interface Alive {
  readonly node: PublicKey;
  readonly incarnation: number;
  /** Transport address at which the node is reached. */
  readonly addr: string;
}
export interface Dead {
  readonly node: PublicKey;
  readonly incarnation: number;
}
export interface Broadcast {
  readonly topic: string;
  readonly data: Uint8Array;
}
/** Anti-entropy ids are MESSAGE_ID_BYTES long (see limits.ts). */
export interface Digest {
  readonly ids: readonly Uint8Array[];
}
export interface Want {
  readonly ids: readonly Uint8Array[];
}
