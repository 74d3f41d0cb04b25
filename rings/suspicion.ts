/**
 * Lifeguard suspicion timers (after memberlist's suspicion.go). A suspicion starts at a long timeout
 * and shrinks as independent members confirm it, so a node that many peers cannot reach is declared
 * dead quickly while a lone (perhaps itself unhealthy) accuser has to wait the full time. Pure: the
 * caller passes times in and reads the deadline out.
 */
import type { NodeId } from "./membership-types.ts";

/**
 * The minimum suspicion timeout for a cluster of `n` members:
 * suspicionMult × max(1, log10 n) × probeIntervalMs. The scale is kept to 1/1000 and the result is
 * rounded down to a whole millisecond, as memberlist does.
 */
export function suspicionMinTimeoutMs(suspicionMult: number, n: number, probeIntervalMs: number): number {
  const nodeScale = Math.max(1, Math.log10(Math.max(1, n)));
  return Math.floor((suspicionMult * Math.floor(nodeScale * 1000) * probeIntervalMs) / 1000);
}

/**
 * The whole suspicion timeout after `confirmations` independent confirmations out of `k` expected:
 * max(min, max − (max − min) × log(c + 1) / log(k + 1)), rounded down to a millisecond. With k < 1
 * nobody is expected to confirm and the timeout is `minMs` from the start.
 */
export function suspicionTimeoutMs(confirmations: number, k: number, minMs: number, maxMs: number): number {
  if (k < 1) return minMs;
  const fraction = Math.log(confirmations + 1) / Math.log(k + 1);
  return Math.max(minMs, Math.floor(maxMs - fraction * (maxMs - minMs)));
}

/**
 * One running suspicion of one member. The accuser that started it does not count as a confirmation;
 * each other distinct `from` does, up to `k`.
 */
export class Suspicion {
  private readonly confirmers = new Set<NodeId>();
  private confirmed = 0;
  /** Cached: the runtime asks for the next deadline after every message, so compute it on change. */
  private deadline: number;

  /**
   * @param from the accuser whose message started the suspicion.
   * @param k confirmations expected (memberlist: suspicionMult − 2, or 0 in tiny clusters).
   * @param startMs when the suspicion started.
   */
  constructor(
    from: NodeId,
    readonly k: number,
    readonly minMs: number,
    readonly maxMs: number,
    readonly startMs: number,
  ) {
    this.confirmers.add(from);
    this.deadline = startMs + suspicionTimeoutMs(0, k, minMs, maxMs);
  }

  /**
   * Counts `from` as an independent confirmation. Returns true if it was new (so worth gossiping),
   * false for a repeat, the original accuser, or once `k` confirmations are in.
   */
  confirm(from: NodeId): boolean {
    if (this.confirmed >= this.k || this.confirmers.has(from)) return false;
    this.confirmers.add(from);
    this.confirmed++;
    this.deadline = this.startMs + suspicionTimeoutMs(this.confirmed, this.k, this.minMs, this.maxMs);
    return true;
  }

  /** How many independent confirmations arrived. */
  confirmations(): number {
    return this.confirmed;
  }

  /** When the suspected member is to be declared dead (may already be past after a confirmation). */
  deadlineMs(): number {
    return this.deadline;
  }
}
