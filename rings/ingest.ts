/**
 * The ingest pipeline for one received envelope: id → dedup → decode → authorize → verify → payload.
 *
 * The order is the point. Verification is the scarce resource (tens of microseconds each), so every
 * cheaper refusal comes first: a duplicate costs a slice of the signature bytes and one map lookup; an
 * envelope from a key that was never announced, or is revoked, or may not send this type, is refused
 * before its signature is checked. Only a verified envelope is handed on (and only then enters the
 * seen-set, by the caller), so unverified garbage can neither poison dedup nor reach any logic.
 * A Command passes the cheap check when its sender may command at all; once it is verified and its
 * action decoded, the per-action rule (command-rights.ts) refuses what this sender may not do, so a
 * viewer's `exec` is neither delivered nor forwarded, on any node. Every refusal is counted with its
 * reason. The three steps (`screen`, `verifyScreened`, `admit`) are exported so that a batch can run
 * them in phases (ingest-batch.ts).
 */
import {
  type Certificate,
  decodeEnvelope,
  decodePayload,
  EnjinError,
  type Envelope,
  envelopeIdKey,
  MessageType,
  type PayloadOf,
  type Ring,
  verifyEnvelope,
} from "../protocol/index.ts";
import { COMMAND_ROLES, commandRefusal } from "./command-rights.ts";
import type { Counters } from "./counters.ts";
import { hasRole, ROOT, type Standing, type TrustStore } from "./trust.ts";

/** An envelope that passed every check, with its decoded payload. */
export interface Accepted<T extends MessageType = MessageType> {
  /** The message id (dedup key): see `envelopeIdKey`. */
  readonly id: string;
  readonly envelope: Envelope;
  readonly payload: PayloadOf<T>;
  /** Hops left, as it arrived. */
  readonly hops: number;
  /** Hex of the sender's key. */
  readonly sender: string;
  readonly standing: Standing;
}

/** What ingest needs from the node. */
export interface IngestContext {
  readonly trust: TrustStore;
  /** The ring whose network this node listens on. */
  readonly ring: Ring;
  /** Dedup: true when the id was already accepted. */
  readonly hasSeen: (id: string) => boolean;
  readonly counters: Counters;
  /** Signature check; default `verifyEnvelope`. Simulations may share a memo across their nodes. */
  readonly verify?: (envelope: Envelope) => boolean;
}

/** Message types that travel on a ring's network between its members. */
const MEMBER_TYPES: ReadonlySet<MessageType> = new Set([
  MessageType.Ping,
  MessageType.PingReq,
  MessageType.Ack,
  MessageType.Nack,
  MessageType.Suspect,
  MessageType.Alive,
  MessageType.Dead,
  MessageType.Broadcast,
  MessageType.Digest,
  MessageType.Want,
  MessageType.MemberDigest,
  MessageType.MemberWant,
]);

/**
 * Whether a sender of this standing may send `type` on ring `ring`'s network; null when it may, or
 * the refusal reason. Join messages never come through gossip: they have their own path.
 */
export function authorize(standing: Standing, type: MessageType, ring: Ring): string | null {
  if (type === MessageType.Announce || type === MessageType.Revoke) {
    if (standing === ROOT) return null;
    return hasRole(standing, "issuer") || hasRole(standing, "admin") ? null : "not-an-issuer";
  }
  if (type === MessageType.Command) {
    if (standing === ROOT) return "root-does-not-command";
    // Which actions it may send is known only after decoding: see commandRefusal.
    return COMMAND_ROLES.some((role) => hasRole(standing, role)) ? null : "not-an-operator";
  }
  if (MEMBER_TYPES.has(type)) {
    if (standing === ROOT) return "root-is-not-a-member";
    return isMemberOf(standing, ring) ? null : "not-a-member-of-ring";
  }
  if (type === MessageType.Result) {
    // Results travel up from every ring below, bridged network to network towards the operator,
    // each signed by the node that ran the command (child-network.ts); never from above.
    if (standing === ROOT) return "root-is-not-a-member";
    return standing.ring >= ring && hasRole(standing, "node") ? null : "not-a-member-of-ring";
  }
  return "not-a-gossip-type";
}

/**
 * The network of ring N carries ring N's nodes and the ring N+1 nodes they supervise: a node talks
 * on its own ring's network and on its parent's (DESIGN.md), so a ring-1 node is a member of the
 * ring-0 network too, while a ring-2 node never reaches ring 0's.
 */
export function isMemberOf(cert: Certificate, ring: Ring): boolean {
  return (cert.ring === ring || cert.ring === ring + 1) && hasRole(cert, "node");
}

/** An envelope that passed every check before its signature's: what `screen` hands on to verify. */
export interface Screened {
  readonly id: string;
  readonly envelope: Envelope;
  readonly hops: number;
  readonly sender: string;
  readonly standing: Standing;
}

/**
 * Take one envelope through the pipeline. Returns the accepted message, or null after counting why
 * it was dropped (`duplicate`, or `rejected:<reason>`). Never throws on bad input.
 */
export function ingest(ctx: IngestContext, bytes: Uint8Array, hops: number, nowMs: number): Accepted | null {
  const screened = screen(ctx, bytes, hops, nowMs);
  if (screened === null) return null;
  return verifyScreened(ctx, screened) ? admit(ctx, screened) : null;
}

/**
 * The checks before the signature's: id → dedup → decode → standing → authorize. Returns what the
 * signature check needs, or null after counting why the envelope was dropped.
 */
export function screen(ctx: IngestContext, bytes: Uint8Array, hops: number, nowMs: number): Screened | null {
  const id = envelopeIdKey(bytes);
  if (id === null) return reject(ctx, "malformed-envelope");
  if (ctx.hasSeen(id)) {
    ctx.counters.inc("duplicate");
    return null;
  }
  let envelope: Envelope;
  try {
    envelope = decodeEnvelope(bytes);
  } catch (err) {
    return rejectError(ctx, err);
  }
  const sender = ctx.trust.hexOf(envelope.sender);
  const standing = ctx.trust.standing(sender, nowMs);
  if (standing !== ROOT && typeof standing === "string") return reject(ctx, standing);
  const refusal = authorize(standing, envelope.type, ctx.ring);
  if (refusal !== null) return reject(ctx, refusal);
  return { id, envelope, hops, sender, standing };
}

/** The signature check of a screened envelope; a failure is counted as `rejected:bad-signature`. */
export function verifyScreened(ctx: IngestContext, screened: Screened): boolean {
  if ((ctx.verify ?? verifyEnvelope)(screened.envelope)) return true;
  reject(ctx, "bad-signature");
  return false;
}

/**
 * The checks after a good signature: decode the payload against its schema, then the per-action
 * command rule. Returns the accepted message (counted `accepted`), or null after counting why not.
 */
export function admit(ctx: IngestContext, screened: Screened): Accepted | null {
  const { envelope, standing } = screened;
  let payload: PayloadOf<MessageType>;
  try {
    payload = decodePayload(envelope.type, envelope.payload);
  } catch (err) {
    return rejectError(ctx, err);
  }
  if (envelope.type === MessageType.Command && standing !== ROOT) {
    const action = (payload as PayloadOf<typeof MessageType.Command>).action;
    const actionRefusal = commandRefusal(standing.roles, action);
    if (actionRefusal !== null) return reject(ctx, actionRefusal);
  }
  ctx.counters.inc("accepted");
  const { id, hops, sender } = screened;
  return { id, envelope, payload, hops, sender, standing };
}

function reject(ctx: IngestContext, reason: string): null {
  ctx.counters.inc(`rejected:${reason}`);
  return null;
}

function rejectError(ctx: IngestContext, err: unknown): null {
  if (err instanceof EnjinError) return reject(ctx, err.reason);
  throw err;
}
