/**
 * A bounded set of message ids with time-based expiry, checked before any signature is verified.
 *
 * The ingest path asks `has(id)` for every received item, so it must be one hash lookup. Memory is
 * bounded by a hard capacity: when full, the oldest id is evicted first. Entries live in an
 * insertion-ordered Map, so the oldest is always at the head and both eviction and expiry pop from
 * the front in amortised O(1).
 *
 * Expiry is applied when time is given (`add`, `prune`), not inside `has`, which takes no clock: an
 * id may therefore outlive its TTL by up to one prune interval (the gossip tick). That errs on the
 * side of dropping a duplicate, never of re-applying one.
 */
export class SeenSet {
  /** id → expiry time (ms). Insertion order is age order as long as `nowMs` never goes back. */
  private readonly expiresAtMs = new Map<string, number>();
  private evictedCount = 0;

  /**
   * @param limit hard capacity (ids); the oldest is evicted past it.
   * @param ttlMs how long an id is remembered after it was added.
   */
  constructor(
    readonly limit: number,
    readonly ttlMs: number,
  ) {
    if (!(limit >= 1)) throw new RangeError(`SeenSet limit must be >= 1, got ${limit}`);
    if (!(ttlMs > 0)) throw new RangeError(`SeenSet ttlMs must be > 0, got ${ttlMs}`);
  }

  /** Whether `id` has been added and not yet expired or evicted. One hash lookup. */
  has(id: string): boolean {
    return this.expiresAtMs.has(id);
  }

  /**
   * Remembers `id` from `nowMs` for `ttlMs`. Adding an id already present refreshes it (it moves to
   * the young end). Expired ids are pruned and, past the capacity, the oldest ones evicted.
   */
  add(id: string, nowMs: number): void {
    this.expiresAtMs.delete(id);
    this.expiresAtMs.set(id, nowMs + this.ttlMs);
    this.prune(nowMs);
    while (this.expiresAtMs.size > this.limit) {
      const oldest = this.expiresAtMs.keys().next();
      if (oldest.done) break;
      this.expiresAtMs.delete(oldest.value);
      this.evictedCount++;
    }
  }

  /** Drops ids whose expiry is at or before `nowMs`. Stops at the first live one (age order). */
  prune(nowMs: number): void {
    for (const [id, expiresAtMs] of this.expiresAtMs) {
      if (expiresAtMs > nowMs) break;
      this.expiresAtMs.delete(id);
    }
  }

  /** Number of ids currently held. */
  get size(): number {
    return this.expiresAtMs.size;
  }

  /** How many ids were pushed out by the capacity before they expired (a sign the limit is too low). */
  get evicted(): number {
    return this.evictedCount;
  }
}
