/**
 * Deaths this node was told of about members it still holds alive, each waiting for one direct ping
 * of the member: those handed over point to point (a sync's answer), and *unheralded* ones — gossiped
 * about a member held alive, with no suspicion of it heard first. Believed outright, a sync would
 * replay split-time deaths across a healed partition at members that are reachable again (the reason
 * deaths stay out of anti-entropy), and so would the other side's gossip queues, still retransmitting
 * their split-time verdicts when the cut heals; memberlist merges a synced death as a suspicion
 * instead, which would still take a reachable member out of the alive count until it refutes. Here
 * the member is pinged at once, apart from the probe round-robin (which Lifeguard may have slowed
 * ×8): no ack within the probe timeout and the signed notice is applied as it is; an ack drops it.
 * A gossiped death that follows a suspicion, SWIM's usual order, is believed with no ping.
 */
import type { MemberState, NodeId } from "./membership-types.ts";

/** Checks in flight at most (one ping each): 2 × the default notices a sync hands over. */
export const MAX_PENDING_HEARSAY = 64;

/** Why a death is checked: handed over by a sync, or gossiped with no suspicion before it. */
export type HearsaySource = "sync" | "gossip";

/**
 * Whether a death of another member must be checked with one ping before it is believed, and why:
 * `sync`, handed over point to point; `gossip`, unheralded — gossiped about a member `held` alive at
 * that incarnation or an older one, when SWIM declares a death only after gossiping a suspicion of
 * it (such as a partition's other side, healed, still retransmitting its split-time verdicts about
 * members this side never stopped reaching). A leave, or a death of this node, never is.
 */
export function deathToCheck(
  death: {
    readonly from: NodeId;
    readonly node: NodeId;
    readonly incarnation: number;
    readonly hearsay?: true;
  },
  held: { readonly state: MemberState; readonly incarnation: number } | undefined,
  self: NodeId,
): HearsaySource | undefined {
  if (death.from === death.node || death.node === self) return undefined;
  if (death.hearsay) return "sync";
  return held?.state === "alive" && death.incarnation >= held.incarnation ? "gossip" : undefined;
}

/** A death notice waiting for the ack of one ping. */
export interface HeardDeath {
  readonly source: HearsaySource;
  /** The notice's signer. */
  readonly from: NodeId;
  readonly incarnation: number;
  /** The seq of our ping to the member. */
  readonly seq: number;
  /** No ack by then: the notice is applied. */
  readonly deadlineMs: number;
}

/** The pending hearsay checks of one node, keyed by member. */
export class Hearsay {
  private readonly pending = new Map<NodeId, HeardDeath>();

  constructor(private readonly limit = MAX_PENDING_HEARSAY) {}

  /** Whether a check of `node` at `incarnation` or newer is in flight. */
  has(node: NodeId, incarnation: number): boolean {
    return (this.pending.get(node)?.incarnation ?? -1) >= incarnation;
  }

  /** Starts a check of `node` (replacing an older one); false when the limit is reached. */
  add(node: NodeId, heard: HeardDeath): boolean {
    if (!this.pending.has(node) && this.pending.size >= this.limit) return false;
    this.pending.set(node, heard);
    return true;
  }

  /** Ends the check whose ping was `seq`, when `from` (the acker) is the member; returns the check. */
  acked(from: NodeId, seq: number): HeardDeath | undefined {
    const heard = this.pending.get(from);
    if (heard?.seq !== seq) return undefined;
    this.pending.delete(from);
    return heard;
  }

  /** Removes and returns the checks whose deadline passed by `nowMs`. */
  expire(nowMs: number): [NodeId, HeardDeath][] {
    const due: [NodeId, HeardDeath][] = [];
    for (const [node, heard] of this.pending) {
      if (heard.deadlineMs > nowMs) continue;
      this.pending.delete(node);
      due.push([node, heard]);
    }
    return due;
  }

  /** The earliest deadline, or Infinity. */
  nextDeadlineMs(): number {
    let next = Number.POSITIVE_INFINITY;
    for (const heard of this.pending.values()) next = Math.min(next, heard.deadlineMs);
    return next;
  }

  /** Forgets everything (on leave). */
  clear(): void {
    this.pending.clear();
  }
}
