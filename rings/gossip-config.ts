/**
 * Configuration of the gossip layer (rings/gossip.ts): the knobs, their defaults, and the checks
 * that reject combinations which could not work as documented.
 */
import {
  FRAME_HEADER_BYTES,
  MAX_DIGEST_IDS,
  MAX_FRAME_BYTES,
  MAX_FRAME_ITEMS,
  MAX_HOPS,
} from "../protocol/index.ts";
import { ITEM_OVERHEAD_BYTES } from "./broadcast-queue.ts";

/** Tuning of the gossip layer. Durations in ms, sizes in bytes or items. */
export interface GossipConfig {
  /** Peers each message is pushed to, eagerly and per gossip tick. */
  fanout: number;
  /** Period of the lazy (queued) gossip round. */
  gossipIntervalMs: number;
  /** Multiplier on ceil(log10(N + 1)) giving each broadcast's total transmit count. */
  retransmitMult: number;
  /** Hops a locally published message starts with; a receiver forwards with one less, none at 0. */
  maxHops: number;
  /** Period of the digest exchange with one random peer. */
  antiEntropyIntervalMs: number;
  /** Envelopes kept for anti-entropy, at most, in each lane (trust, membership, app). */
  historyLimit: number;
  /** How long an envelope is kept for anti-entropy: the longest partition that heals fully. */
  historyTtlMs: number;
  /** Ids remembered as seen, at most. Must be >= historyLimit. */
  seenLimit: number;
  /** How long an id is remembered as seen. Must be >= historyTtlMs, or anti-entropy re-delivers. */
  seenTtlMs: number;
  /** Byte budget of one outgoing frame, header included. */
  maxFrameBytes: number;
  /** Item budget of one outgoing frame. */
  maxFrameItems: number;
  /** Ids in one digest and honoured from one digest or want (bounds work per message received). */
  maxDigestIds: number;
  /** Hops given to envelopes sent in answer to a want (see the file comment). */
  repairHops: number;
  /** Frames sent in answer to one want, at most: bounds what one small want can make us send. */
  maxRepairFramesPerWant: number;
  /**
   * Hold eager pushes until a `flush` event and send the batch to one set of fanout peers, packed
   * (default false: each message is pushed at once, on its own). A storm of thousands of messages
   * (a partition of a large mesh) then costs a few frames per inbound frame instead of three per
   * message; the daemon flushes after every inbound frame, so no latency is added.
   */
  batchEagerPush: boolean;
  /**
   * Push membership messages eagerly too (default true). False leaves them to the gossip rounds and
   * to piggybacking on probes, as memberlist does: failure detection is paced by suspicion timeouts
   * of seconds, not by dissemination, and a large partition produces thousands of membership
   * messages, which eager push would turn into three frames each at every node.
   */
  eagerPushMembership: boolean;
  /** Broadcasts waiting in the queue, at most. */
  maxQueuedBroadcasts: number;
}

/** Defaults for a LAN mesh of up to a few thousand nodes. */
export function defaultGossipConfig(): GossipConfig {
  return {
    fanout: 3,
    gossipIntervalMs: 200,
    retransmitMult: 4,
    maxHops: 12,
    antiEntropyIntervalMs: 1_000,
    historyLimit: 1_024,
    historyTtlMs: 10 * 60_000,
    seenLimit: 65_536,
    seenTtlMs: 30 * 60_000,
    maxFrameBytes: 1_400,
    maxFrameItems: 64,
    maxDigestIds: 256,
    repairHops: 12,
    maxRepairFramesPerWant: 16,
    maxQueuedBroadcasts: 1_024,
    batchEagerPush: false,
    eagerPushMembership: true,
  };
}

/** A configuration that cannot work as documented. */
export class InvalidGossipConfigError extends Error {
  override readonly name = "InvalidGossipConfigError";
}

/** Throws InvalidGossipConfigError when limits contradict each other. */
export function validateGossipConfig(c: GossipConfig): void {
  const fail = (why: string) => {
    throw new InvalidGossipConfigError(why);
  };
  for (const key of Object.keys(c) as (keyof GossipConfig)[]) {
    const value = c[key];
    if (typeof value === "boolean") continue;
    if (!(value >= 0) || !Number.isFinite(value)) fail(`${key} must be a finite number >= 0`);
  }
  if (c.fanout < 1) fail("fanout must be >= 1");
  if (c.maxRepairFramesPerWant < 1) fail("maxRepairFramesPerWant must be >= 1");
  if (c.gossipIntervalMs <= 0 || c.antiEntropyIntervalMs <= 0) fail("intervals must be > 0");
  if (c.seenTtlMs < c.historyTtlMs) fail("seenTtlMs must be >= historyTtlMs");
  if (c.seenLimit < 3 * c.historyLimit) fail("seenLimit must be >= 3 × historyLimit (three lanes)");
  if (c.maxFrameItems < 1 || c.maxFrameBytes <= FRAME_HEADER_BYTES + ITEM_OVERHEAD_BYTES) {
    fail("frames must hold an item");
  }
  // What the wire format can carry (protocol/limits.ts).
  if (c.maxHops > MAX_HOPS || c.repairHops > MAX_HOPS) fail(`hops must be <= ${MAX_HOPS}`);
  if (c.maxFrameBytes > MAX_FRAME_BYTES) fail(`maxFrameBytes must be <= ${MAX_FRAME_BYTES}`);
  if (c.maxFrameItems > MAX_FRAME_ITEMS) fail(`maxFrameItems must be <= ${MAX_FRAME_ITEMS}`);
  if (c.maxDigestIds > MAX_DIGEST_IDS) fail(`maxDigestIds must be <= ${MAX_DIGEST_IDS}`);
}
