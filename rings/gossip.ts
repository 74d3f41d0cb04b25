/**
 * Epidemic broadcast with anti-entropy, as a pure state machine: `(event, nowMs) → actions`.
 *
 * Dissemination has three layers, fastest first:
 * 1. Eager push: on publish and on first acceptance, the envelope goes at once to `fanout` random
 *    peers (never back to the peer it came from) with one hop less. A message crosses the mesh in
 *    about log_fanout(N) network latencies instead of waiting a gossip tick at every hop.
 * 2. Lazy push: the message also joins the transmit-limited broadcast queue; every gossip tick sends
 *    queued items to `fanout` random peers, and SWIM messages piggyback them, until each has been
 *    sent retransmitMult × ceil(log10(N + 1)) times in all (the eager sends count). This covers loss.
 * 3. Anti-entropy: a bounded history of recent envelopes, bounded per lane (historyLimit each) so a
 *    storm of membership messages cannot push certificates, revocations or application broadcasts
 *    out of it; every `antiEntropyIntervalMs` a digest of
 *    held ids goes to one random peer, which answers with the ids it lacks (`want`) and receives them.
 *    Repaired envelopes travel with `repairHops` hops, so the receiver floods them on into its side
 *    of the mesh: after a partition heals, one crossing per message suffices, and both sides learn
 *    from each other because every node digests to random peers of either side.
 *
 * The runtime asks `hasSeen(id)` before verifying anything and reports only verified messages as
 * `accepted`, so unverified bytes never enter the seen-set. No clock reads, no I/O, no Math.random.
 */

import { FRAME_HEADER_BYTES } from "../protocol/index.ts";
import {
  type BroadcastItem,
  type BroadcastPriority,
  BroadcastQueue,
  type BroadcastSubject,
  itemBytes,
  PRIORITY_ORDER,
  type QueuedBroadcast,
} from "./broadcast-queue.ts";
import { type GossipConfig, validateGossipConfig } from "./gossip-config.ts";
import { type Rng, randomInt, shuffle } from "./rng.ts";
import { SeenSet } from "./seen-set.ts";

export type { BroadcastItem, BroadcastPriority, BroadcastSubject } from "./broadcast-queue.ts";
export { NEWS_WEIGHT } from "./broadcast-queue.ts";
export {
  defaultGossipConfig,
  type GossipConfig,
  InvalidGossipConfigError,
  validateGossipConfig,
} from "./gossip-config.ts";

/** Inputs to the machine. `peers` replaces the set of live members (from membership). */
export type GossipEvent =
  | { type: "tick" }
  | { type: "peers"; peers: string[] }
  /**
   * `repair: false` keeps the message out of the anti-entropy history: it is disseminated, and its
   * id is remembered as seen, but it is never offered in a digest. For judgements that are only true
   * when made (a suspicion, a death): repaired after a healed partition they would accuse members
   * that are alive and reachable again. `subject`: the member a membership message is news about;
   * queuing it drops the queued news about that member it supersedes (see BroadcastQueue).
   */
  | {
      type: "publish";
      id: string;
      envelope: Uint8Array;
      priority: BroadcastPriority;
      repair?: boolean;
      subject?: BroadcastSubject;
    }
  /**
   * A verified message from a peer. `relay: false` marks it seen without passing it on (membership
   * relays only what changed its view, as memberlist does: an accusation already acted on is not
   * news); `repair` as on publish.
   */
  | {
      type: "accepted";
      id: string;
      envelope: Uint8Array;
      hops: number;
      from: string | null;
      priority: BroadcastPriority;
      relay?: boolean;
      repair?: boolean;
      subject?: BroadcastSubject;
    }
  /**
   * This node learned news about a member (from the membership machine, however it came): queued
   * news about the member that it supersedes is dropped instead of retransmitted.
   */
  | { type: "supersede"; subject: BroadcastSubject }
  /**
   * Pass on now a message `accepted` earlier with `relay: false` (membership held it for a check,
   * which confirmed it), as `accepted` would have; nothing if the id was never seen here.
   */
  | {
      type: "release";
      id: string;
      envelope: Uint8Array;
      hops: number;
      from: string | null;
      priority: BroadcastPriority;
      subject?: BroadcastSubject;
    }
  | { type: "digest"; from: string; ids: string[] }
  | { type: "want"; from: string; ids: string[] }
  /**
   * With `batchEagerPush`: push every message published or accepted since the last flush, all to
   * one set of `fanout` peers, packed into as few frames as fit. The runtime flushes after each
   * inbound frame and each publish.
   */
  | { type: "flush" };

/** Outputs the runtime carries out. */
export type GossipAction =
  | { type: "send"; to: string; items: BroadcastItem[] }
  | { type: "send-digest"; to: string; ids: string[] }
  | { type: "send-want"; to: string; ids: string[] };

/** Counters, for metrics and tests. */
export interface GossipStats {
  peers: number;
  seen: number;
  seenEvicted: number;
  history: number;
  queued: number;
  queuedMembership: number;
  queueDropped: number;
  /** Queued membership news dropped because newer news about its member superseded it. */
  queueSuperseded: number;
  published: number;
  accepted: number;
  /** `accepted`/`publish` for an id already seen (the runtime should have dropped it). */
  duplicateAccepts: number;
  eagerItemsSent: number;
  lazyItemsSent: number;
  digestsSent: number;
  wantedIds: number;
  repairedItemsSent: number;
  /** Wanted ids no longer in the history. */
  wantMisses: number;
  /** Envelopes too big for one frame: pushed eagerly, never queued. */
  oversize: number;
  /** Frames left out of want answers by maxRepairFramesPerWant. */
  repairTruncated: number;
}

interface HistoryEntry {
  readonly envelope: Uint8Array;
  readonly priority: BroadcastPriority;
  readonly expiresAtMs: number;
}

/** One node's gossip state machine. */
export class Gossip {
  private peers: string[] = [];
  private readonly seen: SeenSet;
  /** Per lane, id → entry in insertion (age) order. */
  private readonly history = new Map<BroadcastPriority, Map<string, HistoryEntry>>(
    PRIORITY_ORDER.map((p) => [p, new Map()]),
  );
  private readonly queue: BroadcastQueue;
  /** Ids asked for and not yet received → when to give up waiting (so two digests don't ask twice). */
  private readonly pendingWants = new Map<string, number>();
  private nextGossipAtMs: number | undefined;
  private nextAntiEntropyAtMs: number | undefined;
  private digestCursor = 0;
  /** With batchEagerPush: messages waiting for the next flush, and the one peer they all came from. */
  private eagerPending: QueuedBroadcast[] = [];
  private eagerFrom: string | null = null;
  private readonly counters = {
    published: 0,
    accepted: 0,
    duplicateAccepts: 0,
    eagerItemsSent: 0,
    lazyItemsSent: 0,
    digestsSent: 0,
    wantedIds: 0,
    repairedItemsSent: 0,
    wantMisses: 0,
    oversize: 0,
    repairTruncated: 0,
  };

  constructor(
    private readonly self: string,
    private readonly config: GossipConfig,
    private readonly rng: Rng,
  ) {
    validateGossipConfig(config);
    this.seen = new SeenSet(config.seenLimit, config.seenTtlMs);
    this.queue = new BroadcastQueue({
      retransmitMult: config.retransmitMult,
      numNodes: () => this.peers.length + 1,
      maxQueued: config.maxQueuedBroadcasts,
    });
  }

  /** Whether `id` was already accepted or published: one hash lookup, before any signature check. */
  hasSeen(id: string): boolean {
    return this.seen.has(id);
  }

  /** Feeds one event; returns what to send. */
  handle(event: GossipEvent, nowMs: number): GossipAction[] {
    switch (event.type) {
      case "flush":
        return this.flushEager();
      case "tick":
        return this.tick(nowMs);
      case "peers":
        this.peers = [...new Set(event.peers)].filter((p) => p !== this.self);
        return [];
      case "supersede":
        this.queue.supersede(event.subject);
        return [];
      case "release":
        return this.seen.has(event.id) ? this.passOn(event) : [];
      case "publish":
        if (!this.remember(event.id, event.envelope, event.priority, nowMs, event.repair ?? true)) return [];
        this.counters.published++;
        return this.disseminate(
          { id: event.id, envelope: event.envelope, hops: this.config.maxHops, priority: event.priority },
          null,
          event.subject,
        );
      case "accepted":
        if (!this.remember(event.id, event.envelope, event.priority, nowMs, event.repair ?? true)) return [];
        this.counters.accepted++;
        return event.relay === false ? [] : this.passOn(event);
      case "digest":
        return this.onDigest(event.from, event.ids, nowMs);
      case "want":
        return this.onWant(event.from, event.ids);
    }
  }

  /** When the runtime should next send a `tick` (absolute ms; 0 before the first tick). */
  nextWakeMs(): number {
    if (this.nextGossipAtMs === undefined || this.nextAntiEntropyAtMs === undefined) return 0;
    return Math.min(this.nextGossipAtMs, this.nextAntiEntropyAtMs);
  }

  /**
   * When a `tick` next has work at `nowMs`: as `nextWakeMs`, except that a gossip round with nothing
   * queued is none (an idle node would wake every gossipIntervalMs for nothing). Once something is
   * queued, the round comes at the next point of the round's own grid, so queued items still go out
   * together, not one round each. A tick delivered at `nextWakeMs` instead is as correct.
   */
  nextWorkMs(nowMs: number): number {
    if (this.nextGossipAtMs === undefined || this.nextAntiEntropyAtMs === undefined) return 0;
    if (this.queue.size() === 0) return this.nextAntiEntropyAtMs;
    let round = this.nextGossipAtMs;
    const periodMs = this.config.gossipIntervalMs;
    if (round < nowMs) round += Math.ceil((nowMs - round) / periodMs) * periodMs;
    return Math.min(round, this.nextAntiEntropyAtMs);
  }

  /** Queued items to ride on a SWIM message (`maxBytes` counts items only); each counts a transmit. */
  piggyback(maxBytes: number, maxItems: number, _nowMs: number): BroadcastItem[] {
    const items = this.queue.take(maxBytes, maxItems).map(({ envelope, hops }) => ({ envelope, hops }));
    this.counters.lazyItemsSent += items.length;
    return items;
  }

  /** A snapshot of the counters and sizes. */
  stats(): GossipStats {
    return {
      ...this.counters,
      peers: this.peers.length,
      seen: this.seen.size,
      seenEvicted: this.seen.evicted,
      history: this.historySize(),
      queued: this.queue.size(),
      queuedMembership: this.queue.size("membership"),
      queueDropped: this.queue.dropped,
      queueSuperseded: this.queue.supersededCount,
    };
  }

  /** Marks seen and (when `keep`) keeps for anti-entropy; false if it was already seen. */
  private remember(
    id: string,
    envelope: Uint8Array,
    priority: BroadcastPriority,
    nowMs: number,
    keep: boolean,
  ): boolean {
    this.pendingWants.delete(id);
    if (this.seen.has(id)) {
      this.counters.duplicateAccepts++;
      return false;
    }
    this.seen.add(id, nowMs);
    if (!keep) return true;
    this.lane(priority).set(id, { envelope, priority, expiresAtMs: nowMs + this.config.historyTtlMs });
    this.pruneHistory(nowMs);
    return true;
  }

  /**
   * Pass a message received from `from` on with one hop fewer, clamped: a peer cannot buy a message
   * more reach than this node would give its own.
   */
  private passOn(event: Extract<GossipEvent, { type: "accepted" | "release" }>): GossipAction[] {
    const { id, envelope, priority } = event;
    const hops = Math.min(event.hops, this.config.maxHops) - 1;
    return this.disseminate({ id, envelope, hops, priority }, event.from, event.subject);
  }

  /** Eager push to `fanout` peers other than `from`, then queue for lazy gossip. */
  private disseminate(
    message: QueuedBroadcast,
    from: string | null,
    subject: BroadcastSubject | undefined,
  ): GossipAction[] {
    const item: QueuedBroadcast = subject === undefined ? message : { ...message, subject };
    const { envelope, hops, priority } = item;
    if (hops <= 0) {
      // Not passed on, but still news here: what it supersedes is not worth sending either.
      if (subject !== undefined) this.queue.supersede(subject);
      return [];
    }
    if (priority === "membership" && !this.config.eagerPushMembership) {
      if (itemBytes({ envelope, hops }) > this.itemBudgetBytes()) this.counters.oversize++;
      else this.queue.enqueue(item, 0);
      return [];
    }
    if (this.config.batchEagerPush) {
      this.eagerPending.push(item);
      // One sender for the whole batch is excluded; a mixed batch excludes nobody.
      this.eagerFrom = this.eagerPending.length === 1 || this.eagerFrom === from ? from : null;
      return [];
    }
    const targets = this.samplePeers(this.config.fanout, from);
    const actions: GossipAction[] = targets.map((to) => ({ type: "send", to, items: [{ envelope, hops }] }));
    this.counters.eagerItemsSent += targets.length;
    if (itemBytes({ envelope, hops }) > this.itemBudgetBytes()) this.counters.oversize++;
    else this.queue.enqueue(item, targets.length);
    return actions;
  }

  /** Push the pending batch to one set of fanout peers, packed; then queue each item for lazy gossip. */
  private flushEager(): GossipAction[] {
    const pending = this.eagerPending;
    if (pending.length === 0) return [];
    this.eagerPending = [];
    const targets = this.samplePeers(this.config.fanout, this.eagerFrom);
    pending.sort((a, b) => PRIORITY_ORDER.indexOf(a.priority) - PRIORITY_ORDER.indexOf(b.priority));
    const frames = packFrames(pending, this.itemBudgetBytes(), this.config.maxFrameItems);
    const actions: GossipAction[] = [];
    for (const to of targets) for (const items of frames) actions.push({ type: "send", to, items });
    this.counters.eagerItemsSent += targets.length * pending.length;
    for (const item of pending) {
      if (itemBytes(item) > this.itemBudgetBytes()) this.counters.oversize++;
      else this.queue.enqueue(item, targets.length);
    }
    return actions;
  }

  private tick(nowMs: number): GossipAction[] {
    this.seen.prune(nowMs);
    this.pruneHistory(nowMs);
    for (const [id, expiresAtMs] of this.pendingWants) {
      if (expiresAtMs > nowMs) break;
      this.pendingWants.delete(id);
    }
    if (this.nextGossipAtMs === undefined || this.nextAntiEntropyAtMs === undefined) {
      // A random phase, so that nodes started together do not gossip in lockstep.
      this.nextGossipAtMs = nowMs + randomInt(this.rng, this.config.gossipIntervalMs);
      this.nextAntiEntropyAtMs = nowMs + randomInt(this.rng, this.config.antiEntropyIntervalMs);
    }
    const actions: GossipAction[] = [];
    if (nowMs >= this.nextGossipAtMs) {
      this.nextGossipAtMs = nextOnGrid(this.nextGossipAtMs, this.config.gossipIntervalMs, nowMs);
      if (this.queue.size() > 0) actions.push(...this.gossipRound());
    }
    if (nowMs >= this.nextAntiEntropyAtMs) {
      this.nextAntiEntropyAtMs = nextDue(this.nextAntiEntropyAtMs, this.config.antiEntropyIntervalMs, nowMs);
      const to = this.samplePeers(1, null)[0];
      const ids = this.digestIds();
      if (to !== undefined && ids.length > 0) {
        this.counters.digestsSent++;
        actions.push({ type: "send-digest", to, ids });
      }
    }
    return actions;
  }

  /** memberlist's gossip(): a separate take for each of `fanout` peers, each counting a transmit. */
  private gossipRound(): GossipAction[] {
    const actions: GossipAction[] = [];
    for (const to of this.samplePeers(this.config.fanout, null)) {
      const items = this.queue.take(this.itemBudgetBytes(), this.config.maxFrameItems);
      if (items.length === 0) break;
      this.counters.lazyItemsSent += items.length;
      actions.push({ type: "send", to, items: items.map(({ envelope, hops }) => ({ envelope, hops })) });
    }
    return actions;
  }

  /**
   * Up to maxDigestIds ids: the newest half always (recent loss is the common case), the other half a
   * window rotating over the older ones, so that a long partition is caught up on in full too.
   */
  private digestIds(): string[] {
    const max = this.config.maxDigestIds;
    // Oldest first; the rarer lanes last, so they fall in the always-sent newest half.
    const ids = ["membership", "app", "trust"].flatMap((p) => [...this.lane(p as BroadcastPriority).keys()]);
    if (ids.length <= max) return ids.reverse();
    const newestCount = Math.ceil(max / 2);
    const older = ids.slice(0, ids.length - newestCount);
    const digest = ids.slice(ids.length - newestCount).reverse();
    const windowCount = Math.min(max - newestCount, older.length);
    for (let i = 0; i < windowCount; i++) {
      digest.push(older[(this.digestCursor + i) % older.length] as string);
    }
    this.digestCursor = (this.digestCursor + windowCount) % older.length;
    return digest;
  }

  private onDigest(from: string, ids: string[], nowMs: number): GossipAction[] {
    const wanted: string[] = [];
    for (const id of ids.slice(0, this.config.maxDigestIds)) {
      if (this.seen.has(id) || (this.pendingWants.get(id) ?? 0) > nowMs) continue;
      wanted.push(id);
      this.pendingWants.delete(id);
      this.pendingWants.set(id, nowMs + this.config.antiEntropyIntervalMs);
    }
    while (this.pendingWants.size > this.config.maxDigestIds * 4) {
      const oldest = this.pendingWants.keys().next();
      if (oldest.done) break;
      this.pendingWants.delete(oldest.value);
    }
    if (wanted.length === 0) return [];
    this.counters.wantedIds += wanted.length;
    return [{ type: "send-want", to: from, ids: wanted }];
  }

  private onWant(from: string, ids: string[]): GossipAction[] {
    const held: { priority: BroadcastPriority; item: BroadcastItem }[] = [];
    for (const id of new Set(ids.slice(0, this.config.maxDigestIds))) {
      const entry = this.historyEntry(id);
      if (!entry) {
        this.counters.wantMisses++;
        continue;
      }
      held.push({
        priority: entry.priority,
        item: { envelope: entry.envelope, hops: this.config.repairHops },
      });
    }
    // Lane order (stable sort keeps the requested order within a lane).
    held.sort((a, b) => PRIORITY_ORDER.indexOf(a.priority) - PRIORITY_ORDER.indexOf(b.priority));
    const frames = packFrames(
      held.map((h) => h.item),
      this.itemBudgetBytes(),
      this.config.maxFrameItems,
    );
    // The rest is asked for again at a later digest (the pending want expires after an interval).
    const sent = frames.slice(0, this.config.maxRepairFramesPerWant);
    this.counters.repairTruncated += frames.length - sent.length;
    this.counters.repairedItemsSent += sent.reduce((n, items) => n + items.length, 0);
    return sent.map((items) => ({ type: "send", to: from, items }));
  }

  /** Bytes left for items in a frame of maxFrameBytes. */
  private itemBudgetBytes(): number {
    return this.config.maxFrameBytes - FRAME_HEADER_BYTES;
  }

  private pruneHistory(nowMs: number): void {
    for (const lane of this.history.values()) {
      for (const [id, entry] of lane) {
        if (entry.expiresAtMs > nowMs && lane.size <= this.config.historyLimit) break;
        lane.delete(id);
      }
    }
  }

  private lane(priority: BroadcastPriority): Map<string, HistoryEntry> {
    return this.history.get(priority) as Map<string, HistoryEntry>;
  }

  private historyEntry(id: string): HistoryEntry | undefined {
    for (const lane of this.history.values()) {
      const entry = lane.get(id);
      if (entry !== undefined) return entry;
    }
    return undefined;
  }

  private historySize(): number {
    let n = 0;
    for (const lane of this.history.values()) n += lane.size;
    return n;
  }

  /** Up to `count` distinct random peers, never `exclude`. */
  private samplePeers(count: number, exclude: string | null): string[] {
    const peers = this.peers;
    if (peers.length <= count * 3) {
      return shuffle(
        this.rng,
        peers.filter((p) => p !== exclude),
      ).slice(0, count);
    }
    // Many peers: rejection sampling is O(count) instead of copying the whole list.
    const picked = new Set<string>();
    while (picked.size < count) {
      const peer = peers[randomInt(this.rng, peers.length)] as string;
      if (peer !== exclude) picked.add(peer);
    }
    return [...picked];
  }
}

/** The first point of `dueMs`'s grid of `periodMs` after `nowMs` (missed points are skipped). */
function nextOnGrid(dueMs: number, periodMs: number, nowMs: number): number {
  return dueMs + (Math.floor((nowMs - dueMs) / periodMs) + 1) * periodMs;
}

/** The next due time after `dueMs`, skipping missed periods instead of bursting to catch up. */
function nextDue(dueMs: number, periodMs: number, nowMs: number): number {
  const next = dueMs + periodMs;
  return next > nowMs ? next : nowMs + periodMs;
}

/**
 * Greedily packs items into frames whose items take at most `maxBytes` (frame header not included)
 * and `maxItems`; an oversize item goes alone.
 */
export function packFrames(items: BroadcastItem[], maxBytes: number, maxItems: number): BroadcastItem[][] {
  const frames: BroadcastItem[][] = [];
  let frame: BroadcastItem[] = [];
  let bytes = 0;
  for (const item of items) {
    const size = itemBytes(item);
    if (frame.length > 0 && (bytes + size > maxBytes || frame.length >= maxItems)) {
      frames.push(frame);
      frame = [];
      bytes = 0;
    }
    frame.push(item);
    bytes += size;
  }
  if (frame.length > 0) frames.push(frame);
  return frames;
}
