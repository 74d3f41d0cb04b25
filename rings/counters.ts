/**
 * Counted outcomes. Every rejection of outside input is counted with its reason (a stable kebab-case
 * string, the `reason` of the error class that caused it), so an operator can see what was refused
 * and why.
 */
export class Counters {
  readonly #counts = new Map<string, number>();

  /** Add `n` (default 1) to the counter named `name`. */
  inc(name: string, n = 1): void {
    this.#counts.set(name, (this.#counts.get(name) ?? 0) + n);
  }

  /** The current value of `name` (0 when never counted). */
  get(name: string): number {
    return this.#counts.get(name) ?? 0;
  }

  /** A plain snapshot, sorted by name, for logs, `--json` output and tests. */
  snapshot(): Record<string, number> {
    return Object.fromEntries([...this.#counts.entries()].sort(([a], [b]) => a.localeCompare(b)));
  }
}
