/**
 * Serialize async work per key within one process: `run(key, fn)` starts `fn` only after every
 * earlier `run` with the same key has settled. Used so that racing redemptions of one token do
 * their read-check-write one at a time.
 */
export class KeyedMutex {
  readonly #tails = new Map<string, Promise<unknown>>();

  /** Run `fn` once the work queued before it under `key` has finished (resolved or rejected). */
  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    const result = previous.then(fn, fn);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.#tails.set(key, tail);
    try {
      return await result;
    } finally {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }

  /** Keys with work queued or running. */
  size(): number {
    return this.#tails.size;
  }
}
