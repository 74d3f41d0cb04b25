/**
 * Time for the daemon and the simulator. Logic in rings/ never reads a clock: it is handed `now`.
 * The daemon uses `systemClock()`; simulations use `VirtualClock` (see virtual-clock.ts), a
 * discrete-event scheduler that jumps from one due timer to the next.
 */

/** An opaque timer handle. */
export type TimerId = number;

/** A source of time and one-shot timers; the only way agent code waits. */
export interface Clock {
  /** Milliseconds since the epoch (virtual time in simulations). */
  now(): number;
  /** Run `fn` once after `delayMs` (>= 0). */
  setTimer(delayMs: number, fn: () => void): TimerId;
  /** Cancel a timer; unknown or already-fired ids are ignored. */
  clearTimer(id: TimerId): void;
}

/** Node's setTimeout fires at once for delays above this (2^31 - 1 ms, about 24.8 days). */
const MAX_NODE_TIMER_DELAY_MS = 2_147_483_647;

/**
 * The wall clock: `Date.now()` and Node timers.
 *
 * Its timers are ordinary (ref'd) Node timers: a pending timer keeps the process alive, exactly like
 * `setTimeout`. That is deliberate — a daemon waiting for its next probe must not exit — so whoever
 * owns the clock clears its timers on shutdown. Delays longer than Node's limit (~24.8 days) are
 * chained rather than firing early. Negative or NaN delays count as 0. Each call returns an
 * independent clock (no module-level state), so many nodes can share a process.
 */
export function systemClock(): Clock {
  const timers = new Map<TimerId, ReturnType<typeof setTimeout>>();
  let nextId = 1;

  const arm = (id: TimerId, dueMs: number, fn: () => void): void => {
    const remainingMs = Math.max(0, dueMs - Date.now());
    if (remainingMs > MAX_NODE_TIMER_DELAY_MS) {
      timers.set(
        id,
        setTimeout(() => arm(id, dueMs, fn), MAX_NODE_TIMER_DELAY_MS),
      );
      return;
    }
    timers.set(
      id,
      setTimeout(() => {
        timers.delete(id);
        fn();
      }, remainingMs),
    );
  };

  return {
    now: () => Date.now(),
    setTimer(delayMs, fn) {
      const id = nextId++;
      const safeDelayMs = Math.max(delayMs || 0, 0); // NaN counts as 0
      arm(id, Date.now() + safeDelayMs, fn);
      return id;
    },
    clearTimer(id) {
      const handle = timers.get(id);
      if (handle === undefined) return;
      clearTimeout(handle);
      timers.delete(id);
    },
  };
}
