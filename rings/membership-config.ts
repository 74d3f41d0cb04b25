/**
 * Membership configuration: defaults, validation, and the derived numbers other parts of the system
 * plan with (gossip retransmissions, the failure-detection time bound).
 */
import { MAX_SYNC_DIGEST_ENTRIES, MAX_SYNC_WANT_ENTRIES } from "../protocol/index.ts";
import type { MembershipConfig } from "./membership-types.ts";
import { suspicionMinTimeoutMs } from "./suspicion.ts";

/** A configuration that cannot work; `reason` names the broken constraint. */
export class InvalidMembershipConfigError extends Error {
  override readonly name = "InvalidMembershipConfigError";
  constructor(readonly reason: string) {
    super(`invalid membership config: ${reason}`);
  }
}

/**
 * memberlist's DefaultLANConfig: probe every 1 s, ack within 500 ms, 3 indirect checks, suspicion
 * multiplier 4 (max ×6), awareness up to ×8, retransmit multiplier 4. `nackTimeoutMs` is 400 so a
 * helper's nack reaches the requester before its 1 s interval ends on a LAN (see the field's doc).
 */
export function lanConfig(): MembershipConfig {
  return {
    probeIntervalMs: 1000,
    probeTimeoutMs: 500,
    nackTimeoutMs: 400,
    indirectChecks: 3,
    suspicionMult: 4,
    suspicionMaxTimeoutMult: 6,
    awarenessMaxMultiplier: 8,
    retransmitMult: 4,
  };
}

/** Throws InvalidMembershipConfigError unless `config` is usable. */
export function validateConfig(config: MembershipConfig): void {
  const positive = (v: number) => Number.isFinite(v) && v > 0;
  const wholeAtLeast = (v: number, min: number) => Number.isInteger(v) && v >= min;
  if (!positive(config.probeIntervalMs)) throw new InvalidMembershipConfigError("probeIntervalMs > 0");
  if (!positive(config.probeTimeoutMs) || config.probeTimeoutMs >= config.probeIntervalMs)
    throw new InvalidMembershipConfigError("0 < probeTimeoutMs < probeIntervalMs");
  if (!positive(config.nackTimeoutMs)) throw new InvalidMembershipConfigError("nackTimeoutMs > 0");
  if (!wholeAtLeast(config.indirectChecks, 0)) throw new InvalidMembershipConfigError("indirectChecks >= 0");
  if (!wholeAtLeast(config.suspicionMult, 1)) throw new InvalidMembershipConfigError("suspicionMult >= 1");
  if (!wholeAtLeast(config.suspicionMaxTimeoutMult, 1))
    throw new InvalidMembershipConfigError("suspicionMaxTimeoutMult >= 1");
  if (!wholeAtLeast(config.awarenessMaxMultiplier, 1))
    throw new InvalidMembershipConfigError("awarenessMaxMultiplier >= 1");
  if (!wholeAtLeast(config.retransmitMult, 1)) throw new InvalidMembershipConfigError("retransmitMult >= 1");
  const jitter = config.suspicionJitterFraction;
  if (jitter !== undefined && !(jitter >= 0 && jitter <= 1))
    throw new InvalidMembershipConfigError("0 <= suspicionJitterFraction <= 1");
  if (config.reconnectIntervalMs !== undefined && !(config.reconnectIntervalMs > 0))
    throw new InvalidMembershipConfigError("reconnectIntervalMs > 0");
  if (config.deadReclaimMs !== undefined && !(config.deadReclaimMs >= 0))
    throw new InvalidMembershipConfigError("deadReclaimMs >= 0");
}

/** How many times the gossip layer sends each broadcast in a cluster of `n`: mult × ceil(log10(n+1)). */
export function retransmitLimit(retransmitMult: number, n: number): number {
  return retransmitMult * Math.ceil(Math.log10(n + 1));
}

/** Assumptions for `detectionBoundMs`. */
export interface DetectionBoundOptions {
  /**
   * Accept this probability that the bound is exceeded (0 < p < 1) in exchange for a much tighter
   * bound. Unset: the deterministic worst case.
   */
  missProbability?: number;
  /** Time for a broadcast to reach every member (one latency on a perfect network). Default 0. */
  disseminationMs?: number;
}

/**
 * How long after a member stops answering every other member has declared it dead, in a cluster of
 * `n` members (the failed one included) whose probers are healthy (score 0, so unscaled intervals),
 * no message is lost and every probe round trip is shorter than probeTimeoutMs.
 *
 * Derivation, with I = probeIntervalMs and R = n − 1 (each prober's round: all members but itself):
 * 1. First probe of the failed node F. Every prober walks a fresh random permutation of its R peers,
 *    one probe per I. Any 2R − 1 consecutive probe slots contain a whole round, hence a probe of F,
 *    and the first slot after the failure starts within I; so some probe of F starts within
 *    s = 2R − 1 slots, i.e. before failure + s × I. Probabilistically: a prober misses F in k given
 *    consecutive slots with probability at most 1 − k/R ≤ e^(−k/R) (k/R for a window inside one
 *    round; a window split over two rounds does no worse, (1−a)(1−b) ≤ e^(−a−b)); the R probers draw
 *    their permutations independently, so nobody probes F within k slots with probability at most
 *    e^(−k). With `missProbability` p we take s = min(2R − 1, ceil(ln(1/p))).
 * 2. That probe fails at the end of its interval, + I, and its prober gossips `suspect`.
 * 3. The suspicion reaches everyone within `disseminationMs` (D).
 * 4. Each member's timer runs at most the maximum suspicion timeout,
 *    S = suspicionMaxTimeoutMult × suspicionMult × max(1, log10 n) × I (its estimate of the size is
 *    at most n; confirmations only shorten it), plus its jitter (suspicionJitterFraction × the
 *    minimum timeout). On expiry it declares F dead itself — it does not
 *    even need the first declarer's `dead` gossip.
 * Bound: (s + 1) × I + D + S.
 * For lanConfig and n = 50 that is 98 s + D + 40.75 s deterministically, or 15 s + D + 40.75 s at
 * p = 1e−6; for n = 1000 at p = 1e−6, 15 s + D + 72 s. A loaded cluster multiplies I (not S) by up to
 * awarenessMaxMultiplier.
 */
export function detectionBoundMs(
  config: MembershipConfig,
  n: number,
  options: DetectionBoundOptions = {},
): number {
  const intervalMs = config.probeIntervalMs;
  const worstSlots = Math.max(1, 2 * (n - 1) - 1);
  const p = options.missProbability;
  const slots = p === undefined ? worstSlots : Math.min(worstSlots, Math.ceil(Math.log(1 / p)));
  const minSuspicionMs = suspicionMinTimeoutMs(config.suspicionMult, n, intervalMs);
  const maxSuspicionMs =
    config.suspicionMaxTimeoutMult * minSuspicionMs + (config.suspicionJitterFraction ?? 0) * minSuspicionMs;
  return (slots + 1) * intervalMs + (options.disseminationMs ?? 0) + maxSuspicionMs;
}

/**
 * Tuning of the membership sync (`membership-sync.ts`). Durations in ms. The defaults suit a LAN
 * mesh of up to a few thousand members.
 */
export interface MembershipSyncConfig {
  /**
   * Base period between this node's syncs with one random alive member, scaled by cluster size as
   * memberlist scales its push/pull (see `syncIntervalFor`). memberlist's base is 30 s because each
   * push/pull carries the whole member list; a digest here carries only death and leave notices
   * (none in a calm mesh, so ~110 bytes), so the base is 5 s: 30 s at 1,000 members.
   */
  syncIntervalMs: number;
  /** Entries in one digest, at most (≤ MAX_SYNC_DIGEST_ENTRIES); more go in a rotating window. */
  maxDigestEntries: number;
  /** Notices sent in answer to one digest, and asked for in one want, at most. */
  maxNoticesPerSync: number;
  /** Digests from peers answered per sync interval, at most: bounds what peers can make us send. */
  maxAnswersPerInterval: number;
}

/** Membership sync defaults (see each field). */
export function defaultSyncConfig(): MembershipSyncConfig {
  return { syncIntervalMs: 5_000, maxDigestEntries: 1_024, maxNoticesPerSync: 32, maxAnswersPerInterval: 4 };
}

/** Up to this many members the sync interval is not scaled (memberlist's pushPullScaleThreshold). */
export const SYNC_SCALE_THRESHOLD = 32;

/**
 * The sync interval in a cluster of `n` members: `baseMs` up to SYNC_SCALE_THRESHOLD, then
 * × (ceil(log2 n − log2 32) + 1), as memberlist's pushPullScale: × 2 at 64, × 4 at 256, × 6 at 1,000.
 */
export function syncIntervalFor(baseMs: number, n: number): number {
  if (n <= SYNC_SCALE_THRESHOLD) return baseMs;
  return baseMs * (Math.ceil(Math.log2(n) - Math.log2(SYNC_SCALE_THRESHOLD)) + 1);
}

/** Throws InvalidMembershipConfigError unless `config` is a usable sync configuration. */
export function validateSyncConfig(config: MembershipSyncConfig): void {
  if (!(Number.isFinite(config.syncIntervalMs) && config.syncIntervalMs > 0))
    throw new InvalidMembershipConfigError("syncIntervalMs > 0");
  const digest = config.maxDigestEntries;
  if (!(Number.isInteger(digest) && digest >= 1 && digest <= MAX_SYNC_DIGEST_ENTRIES))
    throw new InvalidMembershipConfigError(`1 <= maxDigestEntries <= ${MAX_SYNC_DIGEST_ENTRIES}`);
  const notices = config.maxNoticesPerSync;
  if (!(Number.isInteger(notices) && notices >= 1 && notices <= MAX_SYNC_WANT_ENTRIES))
    throw new InvalidMembershipConfigError(`1 <= maxNoticesPerSync <= ${MAX_SYNC_WANT_ENTRIES}`);
  if (!(Number.isInteger(config.maxAnswersPerInterval) && config.maxAnswersPerInterval >= 0))
    throw new InvalidMembershipConfigError("maxAnswersPerInterval >= 0");
}
