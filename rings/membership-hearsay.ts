/**
 * Deaths this node was told of point to point (a sync's answer) about members it still holds alive,
 * each waiting for one direct ping of the member. Believed outright, a sync would replay split-time
 * deaths across a healed partition at members that are reachable again (the reason deaths stay out
 * of anti-entropy); memberlist merges such a death as a suspicion instead, which would still take a
 * reachable member out of the alive count until it refutes. Here the member is pinged at once, apart
 * from the probe round-robin (which Lifeguard may have slowed ×8): no ack within the probe timeout
 * and the signed notice is applied as it is — more caution than a gossiped death gets, which is
 * believed with no ping at all; an ack drops it.
 */
import type { NodeId } from "./membership-types.ts";

/** Checks in flight at most (one ping each): 2 × the default notices a sync hands over. */
export const MAX_PENDING_HEARSAY = 64;

/** A death notice waiting for the ack of one ping. */
export interface HeardDeath {
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

  /** Ends the check whose ping was `seq`, when `from` (the acker) is the member; returns the member. */
  acked(from: NodeId, seq: number): NodeId | undefined {
    const heard = this.pending.get(from);
    if (heard?.seq !== seq) return undefined;
    this.pending.delete(from);
    return from;
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
