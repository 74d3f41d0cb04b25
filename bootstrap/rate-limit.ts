/**
 * Token buckets for failed join attempts, keyed by token id or by source address. Pure: time is a
 * parameter. A key whose bucket is full again is forgotten, and the map holds at most `maxKeys`
 * keys (the oldest goes first), so an attacker spraying keys cannot grow memory without bound.
 */

/** Shape of one family of buckets. */
export interface BucketOptions {
  /** Failures allowed in a burst. */
  readonly capacity: number;
  /** Milliseconds for one failure to be forgiven. */
  readonly refillIntervalMs: number;
  /** Most keys remembered at once. */
  readonly maxKeys: number;
}

/** Failed attempts allowed in a burst against one token id. */
export const TOKEN_FAILURE_BURST = 5;
/** One failure against a token id is forgiven after this long. */
export const TOKEN_FAILURE_REFILL_MS = 60_000;
/** Failed attempts allowed in a burst from one source. */
export const SOURCE_FAILURE_BURST = 10;
/** One failure from a source is forgiven after this long. */
export const SOURCE_FAILURE_REFILL_MS = 6_000;
/** Most keys one FailureLimiter remembers. */
export const MAX_LIMITER_KEYS = 10_000;

interface Bucket {
  tokens: number;
  atMs: number;
}

/** Counts failures per key and says when a key has failed too often lately. */
export class FailureLimiter {
  readonly #buckets = new Map<string, Bucket>();
  readonly #options: BucketOptions;

  constructor(options: BucketOptions) {
    if (!(options.capacity >= 1 && options.refillIntervalMs > 0 && options.maxKeys >= 1))
      throw new RangeError("FailureLimiter needs capacity >= 1, refillIntervalMs > 0, maxKeys >= 1");
    this.#options = options;
  }

  #refilled(key: string, nowMs: number): Bucket | undefined {
    const b = this.#buckets.get(key);
    if (b === undefined) return undefined;
    const elapsedMs = Math.max(0, nowMs - b.atMs);
    b.tokens = Math.min(this.#options.capacity, b.tokens + elapsedMs / this.#options.refillIntervalMs);
    b.atMs = Math.max(b.atMs, nowMs);
    if (b.tokens >= this.#options.capacity) {
      this.#buckets.delete(key);
      return undefined;
    }
    return b;
  }

  /** True when `key` may try again (it has at least one failure left in its bucket). */
  allows(key: string, nowMs: number): boolean {
    const b = this.#refilled(key, nowMs);
    return b === undefined || b.tokens >= 1;
  }

  /** Record one failure for `key`. */
  fail(key: string, nowMs: number): void {
    const b = this.#refilled(key, nowMs) ?? { tokens: this.#options.capacity, atMs: nowMs };
    b.tokens = Math.max(0, b.tokens - 1);
    this.#buckets.delete(key); // re-insert: Map order is then least-recently-failed first
    this.#buckets.set(key, b);
    while (this.#buckets.size > this.#options.maxKeys) {
      const oldest = this.#buckets.keys().next().value;
      if (oldest === undefined) break;
      this.#buckets.delete(oldest);
    }
  }

  /** Keys currently remembered (for tests and diagnostics). */
  size(): number {
    return this.#buckets.size;
  }
}
