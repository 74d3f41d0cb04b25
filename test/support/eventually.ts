/**
 * Waiting without fixed sleeps. `eventually` retries an assertion on the wall clock (for real
 * transports and the system clock); `runUntilTrue` drives a VirtualClock event by event until a
 * predicate holds (for simulations).
 */
import type { VirtualClock } from "../../agent/virtual-clock.ts";

/** An `eventually` assertion never passed within its timeout; `cause` is the last failure. */
export class EventuallyTimeoutError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A `runUntilTrue` predicate was still false when its virtual-time budget ran out. */
export class PredicateTimeoutError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Options of `eventually`. */
export interface EventuallyOptions {
  /** Give up after this long on the wall clock (default 5,000 ms). */
  readonly timeoutMs?: number;
  /** Wait this long between attempts (default 10 ms). */
  readonly intervalMs?: number;
}

/**
 * Call `fn` until it returns (or resolves) without throwing, and return its result. Throws
 * EventuallyTimeoutError with the last error as `cause` once `timeoutMs` has passed; `fn` always
 * runs at least once.
 */
export async function eventually<T>(fn: () => T | Promise<T>, options: EventuallyOptions = {}): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 5_000;
  const intervalMs = options.intervalMs ?? 10;
  const deadline = Date.now() + timeoutMs;
  let attempts = 0;
  for (;;) {
    attempts++;
    try {
      return await fn();
    } catch (err) {
      if (Date.now() >= deadline) {
        throw new EventuallyTimeoutError(`not true after ${timeoutMs} ms (${attempts} attempts)`, {
          cause: err,
        });
      }
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/**
 * Run `clock` one due instant at a time until `predicate()` holds, and return the virtual ms that
 * took. Throws PredicateTimeoutError if it still fails after `maxMs` of virtual time (time is then
 * left at the deadline). The predicate is checked before the first event and after each distinct
 * due time, so it sees every state between instants.
 */
export function runUntilTrue(clock: VirtualClock, predicate: () => boolean, maxMs: number): number {
  const startMs = clock.now();
  const deadlineMs = startMs + maxMs;
  for (;;) {
    if (predicate()) return clock.now() - startMs;
    const nextMs = clock.nextDueMs();
    if (nextMs === undefined || nextMs > deadlineMs) {
      clock.runUntil(deadlineMs);
      if (predicate()) return clock.now() - startMs;
      const why = nextMs === undefined ? "no timers pending" : `next timer at ${nextMs} ms`;
      throw new PredicateTimeoutError(`predicate still false after ${maxMs} virtual ms (${why})`);
    }
    clock.runUntil(nextMs);
  }
}
