/**
 * A min-heap of deadlines with lazy deletion, for timers that are many and change often (one
 * suspicion per member during a partition). Instead of removing or re-keying an entry, the owner
 * pushes a new one and tells `peek` which entries still hold; stale ones are dropped when they
 * reach the top. Every operation is O(log n) amortised, where a scan would be O(n) per message.
 */
export class DeadlineHeap<K> {
  readonly #at: number[] = [];
  readonly #keys: K[] = [];

  /** Entries held, stale ones included. */
  get size(): number {
    return this.#at.length;
  }

  /** Add `key` due at `atMs`. */
  push(key: K, atMs: number): void {
    this.#at.push(atMs);
    this.#keys.push(key);
    let i = this.#at.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if ((this.#at[parent] as number) <= atMs) break;
      this.#swap(i, parent);
      i = parent;
    }
  }

  /** The earliest entry for which `valid(key, atMs)` holds, dropping stale ones above it. */
  peek(valid: (key: K, atMs: number) => boolean): { key: K; atMs: number } | undefined {
    while (this.#at.length > 0) {
      const key = this.#keys[0] as K;
      const atMs = this.#at[0] as number;
      if (valid(key, atMs)) return { key, atMs };
      this.pop();
    }
    return undefined;
  }

  /** Remove the earliest entry. */
  pop(): void {
    const last = this.#at.length - 1;
    if (last < 0) return;
    this.#swap(0, last);
    this.#at.pop();
    this.#keys.pop();
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let min = i;
      if (l < last && (this.#at[l] as number) < (this.#at[min] as number)) min = l;
      if (r < last && (this.#at[r] as number) < (this.#at[min] as number)) min = r;
      if (min === i) return;
      this.#swap(i, min);
      i = min;
    }
  }

  #swap(a: number, b: number): void {
    const at = this.#at[a] as number;
    this.#at[a] = this.#at[b] as number;
    this.#at[b] = at;
    const key = this.#keys[a] as K;
    this.#keys[a] = this.#keys[b] as K;
    this.#keys[b] = key;
  }
}
