/**
 * A bounded set of message ids with time-based expiry, checked before any signature is verified.
 *
 * The ingest path asks `has(id)` for every received item, between two signature checks that each
 * flush the core's caches, so the lookup must touch as little memory as possible. The ids live in
 * typed arrays, not in a Map of strings: a ring of entries in age order (the id's four 32-bit words
 * and its expiry time) and an open-addressing index into that ring, probed linearly. A lookup reads
 * one index slot and one entry, where a Map of strings chased a bucket, a chain of entries and each
 * candidate key string across the heap (measured: the Map lookup was ~1 % of an ingested envelope's
 * cost; docs/BENCHMARKS.md). Nothing here is allocated per id, so nothing is left for the garbage
 * collector to copy either.
 *
 * Memory is bounded by a hard capacity: when full, the oldest id is evicted first. The arrays start
 * small and double up to that capacity, so an idle node does not pay for a busy one's set (about
 * 32 bytes an id once grown: 24 in the ring, 8 in the index at load ≤ 1/2).
 *
 * Expiry is applied when time is given (`add`, `prune`), not inside `has`, which takes no clock: an
 * id may therefore outlive its TTL by up to one prune interval (the gossip tick). That errs on the
 * side of dropping a duplicate, never of re-applying one.
 *
 * Keys are message id keys (envelopeIdKey, messageIdKey): MESSAGE_ID_BYTES latin1 characters. A
 * shorter key is compared as if padded with NUL characters (so tests may use short names); a longer
 * one, or one with a character above 0xff, cannot be added. The index hash is not keyed: ids are the
 * first bytes of signatures checked before they get here, so crowding one probe run means grinding
 * signatures with a certified key, each attempt costing a signing, to slow lookups for ids of that run.
 */
import { MESSAGE_ID_BYTES } from "../protocol/index.ts";

/** Ring slots allocated at first; doubled (up to the limit) whenever the ring fills. */
const INITIAL_SLOTS = 256;

export class SeenSet {
  /** The ids' words, four per ring slot. */
  #words: Uint32Array;
  /** Expiry (ms) per ring slot; NaN marks a slot whose id was added again later (skipped). */
  #expiresAtMs: Float64Array;
  /** Ring slot + 1 per index slot; 0 is empty. Twice the ring's slots, rounded up to a power of 2. */
  #index: Int32Array;
  #mask: number;
  /** Ring slots, the oldest entry's slot, and how many slots are in use (NaN ones included). */
  #slots: number;
  #head = 0;
  #used = 0;
  #live = 0;
  #evictedCount = 0;
  /** The key last loaded by `#read`, as four little-endian words. */
  readonly #key = new Uint32Array(4);

  /**
   * @param limit hard capacity (ids); the oldest is evicted past it.
   * @param ttlMs how long an id is remembered after it was added.
   */
  constructor(
    readonly limit: number,
    readonly ttlMs: number,
  ) {
    if (!(limit >= 1) || !Number.isSafeInteger(limit)) {
      throw new RangeError(`SeenSet limit must be an integer >= 1, got ${limit}`);
    }
    if (!(ttlMs > 0)) throw new RangeError(`SeenSet ttlMs must be > 0, got ${ttlMs}`);
    this.#slots = Math.min(limit, INITIAL_SLOTS);
    this.#words = new Uint32Array(this.#slots * 4);
    this.#expiresAtMs = new Float64Array(this.#slots);
    this.#index = new Int32Array(indexSize(this.#slots));
    this.#mask = this.#index.length - 1;
  }

  /** Whether `id` has been added and not yet expired or evicted. One probe run, no allocation. */
  has(id: string): boolean {
    return this.#read(id) && this.#findKey() >= 0;
  }

  /**
   * Remembers `id` from `nowMs` for `ttlMs`. Adding an id already present refreshes it (it moves to
   * the young end). Expired ids are pruned and, past the capacity, the oldest ones evicted.
   */
  add(id: string, nowMs: number): void {
    if (!this.#read(id)) throw new RangeError(`SeenSet keys are up to ${MESSAGE_ID_BYTES} latin1 chars`);
    this.prune(nowMs);
    const found = this.#findKey();
    if (found >= 0) {
      // Refresh: the old entry stays in the ring as a skipped slot; the id is appended anew.
      this.#expiresAtMs[this.#index[found]! - 1] = Number.NaN;
      this.#live--;
      this.#unindex(found);
    }
    if (this.#used === this.#slots) {
      // Full: drop refreshed slots if there are any, else grow, else evict the oldest.
      if (this.#live < this.#used) this.#rebuild(this.#slots);
      else if (this.#slots < this.limit) this.#rebuild(Math.min(this.limit, this.#slots * 2));
      else this.#popOldest(true);
    }
    const slot = (this.#head + this.#used) % this.#slots;
    this.#used++;
    this.#live++;
    this.#words.set(this.#key, slot * 4);
    this.#expiresAtMs[slot] = nowMs + this.ttlMs;
    // Popping may have moved index entries: look for the free slot only now.
    this.#index[~this.#findKey()] = slot + 1;
  }

  /** Drops ids whose expiry is at or before `nowMs`. Stops at the first live one (age order). */
  prune(nowMs: number): void {
    while (this.#used > 0) {
      const expires = this.#expiresAtMs[this.#head]!;
      if (expires > nowMs) return;
      this.#popOldest(false);
    }
  }

  /** Number of ids currently held. */
  get size(): number {
    return this.#live;
  }

  /** How many ids were pushed out by the capacity before they expired (a sign the limit is too low). */
  get evicted(): number {
    return this.#evictedCount;
  }

  /** Loads `key` into #key; false when it cannot be a key. */
  #read(key: string): boolean {
    const n = key.length;
    if (n > MESSAGE_ID_BYTES) return false;
    const words = this.#key;
    let chars = 0;
    if (n === MESSAGE_ID_BYTES) {
      for (let at = 0; at < MESSAGE_ID_BYTES; at += 4) {
        const c0 = key.charCodeAt(at);
        const c1 = key.charCodeAt(at + 1);
        const c2 = key.charCodeAt(at + 2);
        const c3 = key.charCodeAt(at + 3);
        chars |= c0 | c1 | c2 | c3;
        words[at >> 2] = c0 | (c1 << 8) | (c2 << 16) | (c3 << 24);
      }
    } else {
      words.fill(0);
      for (let i = 0; i < n; i++) {
        const c = key.charCodeAt(i);
        chars |= c;
        words[i >> 2]! |= c << ((i & 3) * 8);
      }
    }
    return chars <= 0xff;
  }

  /** The index slot holding the loaded key, or ~(the empty slot where it would go). */
  #findKey(): number {
    const key = this.#key;
    return this.#find(key[0]!, key[1]!, key[2]!, key[3]!);
  }

  /** The index slot holding the id of words a..d, or ~(the empty slot where it would go). */
  #find(a: number, b: number, c: number, d: number): number {
    const words = this.#words;
    const index = this.#index;
    const mask = this.#mask;
    for (let i = hash(a, b, c, d) & mask; ; i = (i + 1) & mask) {
      const held = index[i]!;
      if (held === 0) return ~i;
      const w = (held - 1) * 4;
      if (words[w] === a && words[w + 1] === b && words[w + 2] === c && words[w + 3] === d) return i;
    }
  }

  /** Empties index slot `i`, shifting back the entries after it that would no longer be found. */
  #unindex(i: number): void {
    const index = this.#index;
    const mask = this.#mask;
    for (let hole = i, j = i; ; ) {
      index[hole] = 0;
      for (;;) {
        j = (j + 1) & mask;
        const held = index[j]!;
        if (held === 0) return;
        const home = this.#homeOf(held - 1);
        // The entry at j may fill the hole unless its home lies cyclically within (hole, j].
        const stays = hole <= j ? hole < home && home <= j : hole < home || home <= j;
        if (stays) continue;
        index[hole] = held;
        hole = j;
        break;
      }
    }
  }

  /** The index slot where the id in ring slot `slot` hashes to. */
  #homeOf(slot: number): number {
    const w = slot * 4;
    const words = this.#words;
    return hash(words[w]!, words[w + 1]!, words[w + 2]!, words[w + 3]!) & this.#mask;
  }

  /** Removes the oldest ring entry, from the index too unless it was a refreshed (skipped) slot. */
  #popOldest(evicting: boolean): void {
    const slot = this.#head;
    if (!Number.isNaN(this.#expiresAtMs[slot]!)) {
      const w = slot * 4;
      const words = this.#words;
      this.#unindex(this.#find(words[w]!, words[w + 1]!, words[w + 2]!, words[w + 3]!));
      this.#live--;
      if (evicting) this.#evictedCount++;
    }
    this.#head = (slot + 1) % this.#slots;
    this.#used--;
  }

  /** Lays the live entries out anew in `slots` ring slots, oldest first from slot 0, and reindexes. */
  #rebuild(slots: number): void {
    const words = new Uint32Array(slots * 4);
    const expires = new Float64Array(slots);
    const index = new Int32Array(indexSize(slots));
    const mask = index.length - 1;
    let kept = 0;
    for (let k = 0; k < this.#used; k++) {
      const from = (this.#head + k) % this.#slots;
      if (Number.isNaN(this.#expiresAtMs[from]!)) continue;
      words.set(this.#words.subarray(from * 4, from * 4 + 4), kept * 4);
      expires[kept] = this.#expiresAtMs[from]!;
      let i = hash(words[kept * 4]!, words[kept * 4 + 1]!, words[kept * 4 + 2]!, words[kept * 4 + 3]!) & mask;
      while (index[i] !== 0) i = (i + 1) & mask;
      index[i] = kept + 1;
      kept++;
    }
    this.#words = words;
    this.#expiresAtMs = expires;
    this.#index = index;
    this.#mask = mask;
    this.#slots = slots;
    this.#head = 0;
    this.#used = kept;
  }
}

/** Index slots for `slots` ring slots: a power of two at least twice as many (load ≤ 1/2). */
function indexSize(slots: number): number {
  let size = 2;
  while (size < 2 * slots) size *= 2;
  return size;
}

/** Mixes all four words (test keys differ in one word only; real ids are random in all four). */
function hash(a: number, b: number, c: number, d: number): number {
  let h =
    Math.imul(a, 0x9e3779b1) ^ Math.imul(b, 0x85ebca77) ^ Math.imul(c, 0xc2b2ae3d) ^ Math.imul(d, 0x27d4eb2f);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  return (h ^ (h >>> 13)) >>> 0;
}
