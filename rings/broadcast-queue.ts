/**
 * Outgoing broadcasts waiting to be gossiped, after hashicorp/memberlist's TransmitLimitedQueue.
 *
 * Each item is sent at most `retransmitMult × ceil(log10(N + 1))` times in all, N being the current
 * member count; `take` hands out the items that fit a frame, least-transmitted first, and forgets an
 * item once it reaches its limit. There are three priorities: trust messages (certificates,
 * revocations) first, so that a revocation takes effect at once; then membership messages (suspect,
 * alive, dead); then application broadcasts, so a flood of the latter can delay but never starve
 * failure detection. The queue is bounded: past `maxQueued` it drops the application item
 * that has been sent the most (it has had its chance; anti-entropy still holds it).
 *
 * Membership items name the member they are news about (`subject`). As in memberlist, where a
 * broadcast about a node invalidates the queued ones about the same node, newer news about a member
 * drops what it supersedes: an `alive` at a higher incarnation drops the queued suspicions and deaths
 * of older ones, a death drops the suspicions of its incarnation. Unlike memberlist, news of equal
 * weight is kept (independent suspicions of one incarnation are Lifeguard's confirmations). Without
 * this, a healed partition would go on retransmitting split-time accusations of members that have
 * refuted them, for as long as the queue holds them.
 */
import { FRAME_ITEM_OVERHEAD_BYTES } from "../protocol/index.ts";

/** Which lane a broadcast travels in. Trust is served first, then membership, then app. */
export type BroadcastPriority = "trust" | "membership" | "app";

/** Lanes in the order `take` serves them. */
export const PRIORITY_ORDER: readonly BroadcastPriority[] = ["trust", "membership", "app"];

/** Bytes a frame spends on each item besides the envelope itself (hop count + length prefix). */
export const ITEM_OVERHEAD_BYTES = FRAME_ITEM_OVERHEAD_BYTES;

/** Items too big for the space left that one `take` passes over before it calls the frame full. */
export const MAX_SKIPS_PER_TAKE = 8;

/** What a frame carries for each item: the origin's envelope, untouched, and the hops left. */
export interface BroadcastItem {
  readonly envelope: Uint8Array;
  readonly hops: number;
}

/**
 * The member a membership broadcast is about, and how strong the news is: SWIM orders news about a
 * member by incarnation, then, within one incarnation, alive < suspect < dead (`NEWS_WEIGHT`).
 */
export interface BroadcastSubject {
  readonly node: string;
  readonly incarnation: number;
  readonly weight: number;
}

/** The weight of each kind of membership news within one incarnation (a leave weighs as a death). */
export const NEWS_WEIGHT = { alive: 0, suspect: 1, dead: 2, left: 2 } as const;

/** True when news `a` is older or weaker than news `b` about the same member (b supersedes a). */
export function superseded(a: BroadcastSubject, b: BroadcastSubject): boolean {
  return a.incarnation < b.incarnation || (a.incarnation === b.incarnation && a.weight < b.weight);
}

/** A broadcast as queued. */
export interface QueuedBroadcast extends BroadcastItem {
  readonly id: string;
  readonly priority: BroadcastPriority;
  /** For membership news: the member it is about (see `supersede`). */
  readonly subject?: BroadcastSubject;
}

interface Entry extends QueuedBroadcast {
  transmits: number;
}

/** How many times in all a broadcast is sent in a mesh of `numNodes`: mult × ceil(log10(N + 1)). */
export function retransmitLimit(retransmitMult: number, numNodes: number): number {
  return retransmitMult * Math.ceil(Math.log10(Math.max(0, numNodes) + 1));
}

/** The bytes an item takes in a frame. */
export function itemBytes(item: BroadcastItem): number {
  return item.envelope.length + ITEM_OVERHEAD_BYTES;
}

export interface BroadcastQueueOptions {
  /** Multiplier on ceil(log10(N + 1)); memberlist uses 4. */
  readonly retransmitMult: number;
  /** The current member count, read at every `take` so that limits follow the mesh's size. */
  readonly numNodes: () => number;
  /** Hard bound on queued items. */
  readonly maxQueued: number;
}

/** A transmit-limited, three-priority queue of broadcasts. Pure: no clock, no I/O. */
export class BroadcastQueue {
  /** Per lane: transmit count → (id → entry), each inner Map in insertion (age) order. */
  private readonly lanes = new Map<BroadcastPriority, Map<number, Map<string, Entry>>>(
    PRIORITY_ORDER.map((p) => [p, new Map()]),
  );
  private readonly byId = new Map<string, Entry>();
  /** Ids of the queued items about each member (those with a `subject`). */
  private readonly bySubject = new Map<string, Set<string>>();
  private droppedForSpace = 0;
  private droppedSuperseded = 0;

  constructor(private readonly options: BroadcastQueueOptions) {}

  /** The current per-item transmit limit. */
  limit(): number {
    return retransmitLimit(this.options.retransmitMult, this.options.numNodes());
  }

  /**
   * Queues a broadcast that has already been sent `transmits` times (eager pushes count). An item
   * with the same id is replaced. Nothing is queued if it has already used up its limit. An item
   * with a `subject` first drops the queued items it supersedes (see `supersede`).
   */
  enqueue(item: QueuedBroadcast, transmits = 0): void {
    this.delete(item.id);
    if (item.subject !== undefined) this.supersede(item.subject);
    if (transmits >= this.limit()) return;
    const entry: Entry = {
      id: item.id,
      envelope: item.envelope,
      hops: item.hops,
      priority: item.priority,
      transmits,
      ...(item.subject === undefined ? {} : { subject: item.subject }),
    };
    this.byId.set(entry.id, entry);
    this.bucket(entry.priority, transmits, true).set(entry.id, entry);
    if (entry.subject !== undefined) {
      const ids = this.bySubject.get(entry.subject.node) ?? new Set<string>();
      ids.add(entry.id);
      this.bySubject.set(entry.subject.node, ids);
    }
    while (this.byId.size > this.options.maxQueued) this.dropMostTransmitted();
  }

  /**
   * Takes the items that fit in `maxBytes` (counting ITEM_OVERHEAD_BYTES each), at most `maxItems`:
   * membership before app, fewest transmits first, oldest first among equals. An item too big for
   * what is left is skipped and a smaller one tried. Each item taken counts one transmit; those
   * reaching the limit leave the queue.
   */
  take(maxBytes: number, maxItems: number): QueuedBroadcast[] {
    const limit = this.limit();
    const taken: Entry[] = [];
    const spent: Entry[] = [];
    let bytesLeft = maxBytes;
    let skipped = 0;
    // This runs for every probe and gossip round, so it stops as soon as the frame is full: when no
    // item can fit any more, or after MAX_SKIPS_PER_TAKE items too big for what is left.
    const full = () =>
      taken.length >= maxItems || bytesLeft <= ITEM_OVERHEAD_BYTES || skipped >= MAX_SKIPS_PER_TAKE;
    scan: for (const priority of PRIORITY_ORDER) {
      const lane = this.lane(priority);
      const counts = [...lane.keys()].sort((a, b) => a - b);
      for (const count of counts) {
        for (const entry of lane.get(count)?.values() ?? []) {
          if (full()) break scan;
          if (entry.transmits >= limit) {
            spent.push(entry); // the mesh shrank under it
            continue;
          }
          const bytes = itemBytes(entry);
          if (bytes > bytesLeft) {
            skipped++;
            continue;
          }
          bytesLeft -= bytes;
          taken.push(entry);
        }
      }
    }
    for (const entry of spent) this.delete(entry.id);
    // Moved only after the scan, so an item is never met twice in one take.
    for (const entry of taken) {
      this.bucket(entry.priority, entry.transmits, false)?.delete(entry.id);
      this.pruneBucket(entry.priority, entry.transmits);
      entry.transmits++;
      if (entry.transmits >= limit) {
        this.byId.delete(entry.id);
        if (entry.subject !== undefined) this.forgetSubject(entry.subject.node, entry.id);
      } else this.bucket(entry.priority, entry.transmits, true).set(entry.id, entry);
    }
    return taken.map(({ id, envelope, hops, priority }) => ({ id, envelope, hops, priority }));
  }

  /** Whether `id` is queued. */
  has(id: string): boolean {
    return this.byId.has(id);
  }

  /** Times `id` has been sent so far, or undefined when it is not queued. */
  transmitsOf(id: string): number | undefined {
    return this.byId.get(id)?.transmits;
  }

  /**
   * Drops the queued items about `news.node` that `news` supersedes (older incarnations; weaker news
   * of the same one) and returns how many. Called when this node learns that news, whether or not it
   * will gossip it itself.
   */
  supersede(news: BroadcastSubject): number {
    const ids = this.bySubject.get(news.node);
    if (ids === undefined) return 0;
    let dropped = 0;
    for (const id of [...ids]) {
      const subject = this.byId.get(id)?.subject;
      if (subject !== undefined && superseded(subject, news) && this.delete(id)) dropped++;
    }
    this.droppedSuperseded += dropped;
    return dropped;
  }

  /** Removes `id` if queued. */
  delete(id: string): boolean {
    const entry = this.byId.get(id);
    if (!entry) return false;
    this.byId.delete(id);
    this.bucket(entry.priority, entry.transmits, false)?.delete(id);
    this.pruneBucket(entry.priority, entry.transmits);
    if (entry.subject !== undefined) this.forgetSubject(entry.subject.node, id);
    return true;
  }

  /** Items queued, in all or in one lane. */
  size(priority?: BroadcastPriority): number {
    if (priority === undefined) return this.byId.size;
    let n = 0;
    for (const bucket of this.lane(priority).values()) n += bucket.size;
    return n;
  }

  /** Items dropped because the queue was full. */
  get dropped(): number {
    return this.droppedForSpace;
  }

  /** Items dropped because newer news about their member superseded them. */
  get supersededCount(): number {
    return this.droppedSuperseded;
  }

  private forgetSubject(node: string, id: string): void {
    const ids = this.bySubject.get(node);
    if (ids === undefined) return;
    ids.delete(id);
    if (ids.size === 0) this.bySubject.delete(node);
  }

  private dropMostTransmitted(): void {
    for (const priority of [...PRIORITY_ORDER].reverse()) {
      const lane = this.lane(priority);
      if (lane.size === 0) continue;
      const bucket = lane.get(Math.max(...lane.keys()));
      const oldest = bucket?.keys().next();
      if (oldest && !oldest.done) {
        this.delete(oldest.value);
        this.droppedForSpace++;
        return;
      }
    }
  }

  private lane(priority: BroadcastPriority): Map<number, Map<string, Entry>> {
    return this.lanes.get(priority) as Map<number, Map<string, Entry>>;
  }

  private bucket(priority: BroadcastPriority, transmits: number, create: true): Map<string, Entry>;
  private bucket(
    priority: BroadcastPriority,
    transmits: number,
    create: false,
  ): Map<string, Entry> | undefined;
  private bucket(priority: BroadcastPriority, transmits: number, create: boolean) {
    const lane = this.lane(priority);
    let bucket = lane.get(transmits);
    if (!bucket && create) {
      bucket = new Map();
      lane.set(transmits, bucket);
    }
    return bucket;
  }

  private pruneBucket(priority: BroadcastPriority, transmits: number): void {
    const lane = this.lane(priority);
    if (lane.get(transmits)?.size === 0) lane.delete(transmits);
  }
}
