/**
 * Deaths this node was told of point to point (a sync answer) about members it still holds alive:
 * held until its own probe of the member settles them. Believed outright, a sync would replay
 * split-time deaths across a healed partition at members that are reachable again (the reason deaths
 * stay out of anti-entropy); memberlist merges such a death as a suspicion instead, which would still
 * take a reachable member out of the alive count until it refutes. Here the member is probed next:
 * if the probe fails, the signed notice is applied as it is; if it is answered, the notice is dropped.
 */
import type { NodeId } from "./membership-types.ts";

/** Pending hearsay at most: each one takes a probe slot, so a flood cannot stall round-robin probing. */
export const MAX_PENDING_HEARSAY = 16;

/** A death notice waiting for this node's own probe of the member. */
export interface HeardDeath {
  /** The notice's signer. */
  readonly from: NodeId;
  readonly incarnation: number;
}

/** The pending hearsay of one node, in arrival order. */
export class Hearsay {
  private readonly pending = new Map<NodeId, HeardDeath>();

  constructor(private readonly limit = MAX_PENDING_HEARSAY) {}

  /** Holds a notice about `node`; false when one as new is held already or the limit is reached. */
  add(node: NodeId, heard: HeardDeath): boolean {
    const held = this.pending.get(node);
    if (held !== undefined) {
      if (held.incarnation >= heard.incarnation) return false;
      this.pending.set(node, heard);
      return true;
    }
    if (this.pending.size >= this.limit) return false;
    this.pending.set(node, heard);
    return true;
  }

  /**
   * The member to probe next: the oldest pending one that `stillNews` accepts; those it refuses
   * (refuted since, or already dead here) are dropped on the way.
   */
  next(stillNews: (node: NodeId, heard: HeardDeath) => boolean): NodeId | undefined {
    for (const [node, heard] of this.pending) {
      if (stillNews(node, heard)) return node;
      this.pending.delete(node);
    }
    return undefined;
  }

  /** Removes and returns what is held about `node`. */
  take(node: NodeId): HeardDeath | undefined {
    const heard = this.pending.get(node);
    if (heard !== undefined) this.pending.delete(node);
    return heard;
  }

  /** How many are pending. */
  size(): number {
    return this.pending.size;
  }

  /** Forgets everything (on leave). */
  clear(): void {
    this.pending.clear();
  }
}
