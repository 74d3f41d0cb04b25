/**
 * Time for the daemon and the simulator. Logic in rings/ never reads a clock: it is handed `now`.
 * The daemon uses `systemClock()`; simulations use `VirtualClock` (see virtual-clock.ts), a
 * discrete-event scheduler that jumps from one due timer to the next.
 */

/** An opaque timer handle. */
export type TimerId = number;

export interface Clock {
  /** Milliseconds since the epoch (virtual time in simulations). */
  now(): number;
  /** Run `fn` once after `delayMs` (>= 0). */
  setTimer(delayMs: number, fn: () => void): TimerId;
  /** Cancel a timer; unknown or already-fired ids are ignored. */
  clearTimer(id: TimerId): void;
}
