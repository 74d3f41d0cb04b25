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

/** A broadcast as queued. */
export interface QueuedBroadcast extends BroadcastItem {
  readonly id: string;
  readonly priority: BroadcastPriority;
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
  private droppedForSpace = 0;

  constructor(private readonly options: BroadcastQueueOptions) {}

  /** The current per-item transmit limit. */
  limit(): number {
    return retransmitLimit(this.options.retransmitMult, this.options.numNodes());
  }

  /**
   * Queues a broadcast that has already been sent `transmits` times (eager pushes count). An item
   * with the same id is replaced. Nothing is queued if it has already used up its limit.
   */
  enqueue(item: QueuedBroadcast, transmits = 0): void {
    this.delete(item.id);
    if (transmits >= this.limit()) return;
    const entry: Entry = {
      id: item.id,
      envelope: item.envelope,
      hops: item.hops,
      priority: item.priority,
      transmits,
    };
    this.byId.set(entry.id, entry);
    this.bucket(entry.priority, transmits, true).set(entry.id, entry);
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
      if (entry.transmits >= limit) this.byId.delete(entry.id);
      else this.bucket(entry.priority, entry.transmits, true).set(entry.id, entry);
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

  /** Removes `id` if queued. */
  delete(id: string): boolean {
    const entry = this.byId.get(id);
    if (!entry) return false;
    this.byId.delete(id);
    this.bucket(entry.priority, entry.transmits, false)?.delete(id);
    this.pruneBucket(entry.priority, entry.transmits);
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
