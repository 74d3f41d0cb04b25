/**
 * Membership sync, as a pure state machine: after memberlist's periodic push/pull (state.go), but
 * only for what gossip may miss for good. Deaths and leaves are spread once, relayed only as news and
 * kept out of anti-entropy (a healed partition must not replay them), so a node that missed one would
 * otherwise learn it only from its own probe, minutes later in a large mesh slowed by Lifeguard.
 *
 * Every interval (scaled by cluster size) a node sends one random alive member a summary: how many
 * signed death or leave notices it holds and a hash of their (member, incarnation) set. A receiver
 * holding the same set answers nothing: the common case, one ~130-byte frame. Otherwise it answers
 * with its full digest (the entries); the summary's sender then sends the notices the receiver lacks
 * and a want for the entries it lacks itself, which the receiver answers with those notices. The
 * notices are the signed Dead envelopes themselves, so they go through the normal checks (and, for a
 * death, a ping of the member first: see `hearsay` in membership-types.ts).
 *
 * No clock reads, no I/O; randomness from the injected Rng. The runtime carries out the actions.
 */
import { keyFromHex, noticeSetHash } from "../protocol/index.ts";
import type { Counters } from "./counters.ts";
import { type MembershipSyncConfig, syncIntervalFor, validateSyncConfig } from "./membership-config.ts";
import type { MemberState, NodeId } from "./membership-types.ts";
import { type Rng, randomInt } from "./rng.ts";

/** A member and the incarnation of the death or leave notice held about it. */
export interface SyncEntry {
  readonly node: NodeId;
  readonly incarnation: number;
}

/** What the receiver of a digest knows of a member (from its membership view). */
export type SyncMemberView = (node: NodeId) => { incarnation: number; state: MemberState } | undefined;

/** A digest as the machine sends and receives it (the MemberDigest payload, with hex node ids). */
export interface SyncDigest {
  /** Entries left out: `held` and `hash` speak for the sender's set. */
  readonly summary: boolean;
  /** The entries speak only for keys from the first entry's to the last's. */
  readonly partial: boolean;
  /** Notices the sender holds in all. */
  readonly held: number;
  /** `noticeSetHash` of all of them. */
  readonly hash: Uint8Array;
  readonly entries: readonly SyncEntry[];
}

/** `noticeSetHash` of entries with hex node ids (sorted by node, as `held` always is). */
export function syncSetHash(held: readonly SyncEntry[]): Uint8Array {
  return noticeSetHash(held.map((e) => ({ node: keyFromHex(e.node), incarnation: e.incarnation })));
}

/** Inputs. `held` is this node's notices for members it holds dead or left, sorted by node. */
export type SyncEvent =
  /** Deliver at `nextWakeMs()`. `peers`: alive members other than this node; `clusterSize`: members. */
  | { type: "tick"; peers: readonly NodeId[]; clusterSize: number; held: readonly SyncEntry[] }
  /** A verified digest from `from`; `view` answers what this node believes of a member. */
  | {
      type: "digest";
      from: NodeId;
      digest: SyncDigest;
      held: readonly SyncEntry[];
      view: SyncMemberView;
    }
  /** A verified want from `from`: entries of our digest whose notices it lacks. */
  | { type: "want"; from: NodeId; entries: readonly SyncEntry[] };

/** Outputs, carried out by the runtime in order. */
export type SyncAction =
  | { type: "send-digest"; to: NodeId; digest: SyncDigest }
  | { type: "send-want"; to: NodeId; entries: SyncEntry[] }
  /** Send `to` the signed notices held about these members, as they are, point to point. */
  | { type: "send-notices"; to: NodeId; nodes: NodeId[] };

/** A digest we sent, which its receiver may answer with one want until it expires. */
interface Offer {
  readonly nodes: ReadonlySet<NodeId>;
  readonly expiresAtMs: number;
}

/** One node's side of the membership sync. Counters are named `sync:*` and `rejected:sync-*`. */
export class MembershipSync {
  private nextSyncAtMs: number | undefined;
  /** The current scaled interval (set at each sync). */
  private intervalMs: number;
  /** With more notices than a digest holds: the last key of the previous window. */
  private windowAfter: NodeId | undefined;
  private readonly offers = new Map<NodeId, Offer>();
  /** When we answered digests lately (at most maxAnswersPerInterval within one interval). */
  private answeredAtMs: number[] = [];

  /** Throws InvalidMembershipConfigError for an unusable config. */
  constructor(
    private readonly config: MembershipSyncConfig,
    private readonly rng: Rng,
    private readonly counters: Counters,
  ) {
    validateSyncConfig(config);
    this.intervalMs = config.syncIntervalMs;
  }

  /** When to deliver the next tick (absolute ms): 0 before the first one. */
  nextWakeMs(): number {
    return this.nextSyncAtMs ?? 0;
  }

  /** The interval between this node's syncs, as last scaled. */
  currentIntervalMs(): number {
    return this.intervalMs;
  }

  /** Applies one event at `nowMs` (never decreasing); returns what to send. */
  handle(event: SyncEvent, nowMs: number): SyncAction[] {
    switch (event.type) {
      case "tick":
        return this.tick(event.peers, event.clusterSize, event.held, nowMs);
      case "digest":
        return this.onDigest(event, nowMs);
      case "want":
        return this.onWant(event.from, event.entries, nowMs);
    }
  }

  private tick(
    peers: readonly NodeId[],
    clusterSize: number,
    held: readonly SyncEntry[],
    nowMs: number,
  ): SyncAction[] {
    this.intervalMs = syncIntervalFor(this.config.syncIntervalMs, clusterSize);
    if (this.nextSyncAtMs === undefined) {
      // A random phase, so that nodes started together do not sync in step.
      this.nextSyncAtMs = nowMs + randomInt(this.rng, this.intervalMs);
      return [];
    }
    if (nowMs < this.nextSyncAtMs) return [];
    this.nextSyncAtMs = nowMs + this.intervalMs;
    for (const [peer, offer] of this.offers) if (offer.expiresAtMs <= nowMs) this.offers.delete(peer);
    if (peers.length === 0) return [];
    const to = peers[randomInt(this.rng, peers.length)] as NodeId;
    this.counters.inc("sync:digests-sent");
    const digest = { summary: true, partial: false, held: held.length, hash: syncSetHash(held), entries: [] };
    return [{ type: "send-digest", to, digest }];
  }

  /** A full digest of ours for `to`, which it may answer with one want until it expires. */
  private fullDigest(to: NodeId, held: readonly SyncEntry[], hash: Uint8Array, nowMs: number): SyncAction {
    const { entries, partial } = this.window(held);
    this.offers.set(to, { nodes: new Set(entries.map((e) => e.node)), expiresAtMs: nowMs + this.intervalMs });
    this.counters.inc("sync:full-digests-sent");
    return { type: "send-digest", to, digest: { summary: false, partial, held: held.length, hash, entries } };
  }

  /**
   * The entries of this sync's digest: all of them when they fit, else the next maxDigestEntries
   * after the previous window's last key (from the start again once the end was reached).
   */
  private window(held: readonly SyncEntry[]): { entries: SyncEntry[]; partial: boolean } {
    const max = this.config.maxDigestEntries;
    if (held.length <= max) {
      this.windowAfter = undefined;
      return { entries: [...held], partial: false };
    }
    const after = this.windowAfter;
    let start = after === undefined ? 0 : held.findIndex((e) => e.node > after);
    if (start < 0) start = 0;
    const entries = held.slice(start, start + max);
    this.windowAfter = start + max >= held.length ? undefined : entries[entries.length - 1]?.node;
    return { entries, partial: true };
  }

  private onDigest(event: Extract<SyncEvent, { type: "digest" }>, nowMs: number): SyncAction[] {
    const { from, digest, held, view } = event;
    this.counters.inc(digest.summary ? "sync:digests-received" : "sync:full-digests-received");
    let hash: Uint8Array | undefined;
    if (digest.summary) {
      hash = syncSetHash(held);
      if (digest.held === held.length && equalBytes(digest.hash, hash)) {
        this.counters.inc("sync:digests-agreed");
        return [];
      }
    }
    this.answeredAtMs = this.answeredAtMs.filter((t) => t > nowMs - this.intervalMs);
    if (this.answeredAtMs.length >= this.config.maxAnswersPerInterval) {
      this.counters.inc("rejected:sync-busy");
      return [];
    }
    // A summary that differs from ours: answer with the entries, for its sender to compare.
    if (hash !== undefined) {
      this.answeredAtMs.push(nowMs);
      return [this.fullDigest(from, held, hash, nowMs)];
    }
    const { entries, partial } = digest;
    const max = this.config.maxNoticesPerSync;
    // What it lacks: notices we hold that its digest does not cover at the same or a newer incarnation.
    const theirs = new Map<NodeId, number>();
    for (const e of entries) theirs.set(e.node, e.incarnation);
    const low = entries[0]?.node;
    const high = entries[entries.length - 1]?.node;
    const teach: NodeId[] = [];
    for (const e of held) {
      if (teach.length >= max) break;
      if (partial && (low === undefined || high === undefined || e.node < low || e.node > high)) continue;
      if ((theirs.get(e.node) ?? -1) < e.incarnation) teach.push(e.node);
    }
    // What we lack: members we know and still hold alive or suspect at that incarnation, or older.
    const want: SyncEntry[] = [];
    for (const e of entries) {
      if (want.length >= max) break;
      const known = view(e.node);
      if (known === undefined) continue;
      const live = known.state === "alive" || known.state === "suspect";
      if (known.incarnation < e.incarnation || (known.incarnation === e.incarnation && live)) want.push(e);
    }
    const actions: SyncAction[] = [];
    if (teach.length > 0) {
      this.counters.inc("sync:notices-offered", teach.length);
      actions.push({ type: "send-notices", to: from, nodes: teach });
    }
    if (want.length > 0) {
      this.counters.inc("sync:wants-sent");
      this.counters.inc("sync:notices-wanted", want.length);
      actions.push({ type: "send-want", to: from, entries: want });
    }
    if (actions.length > 0) this.answeredAtMs.push(nowMs);
    return actions;
  }

  /** Answers a want once, and only with notices our digest to that peer offered. */
  private onWant(from: NodeId, entries: readonly SyncEntry[], nowMs: number): SyncAction[] {
    this.counters.inc("sync:wants-received");
    const offer = this.offers.get(from);
    if (offer === undefined || offer.expiresAtMs <= nowMs) {
      this.counters.inc("rejected:sync-unsolicited-want");
      return [];
    }
    this.offers.delete(from);
    const nodes = new Set<NodeId>();
    for (const e of entries) {
      if (nodes.size >= this.config.maxNoticesPerSync) break;
      if (offer.nodes.has(e.node)) nodes.add(e.node);
    }
    if (nodes.size === 0) return [];
    return [{ type: "send-notices", to: from, nodes: [...nodes] }];
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
