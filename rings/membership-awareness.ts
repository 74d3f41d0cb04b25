/**
 * Lifeguard local health awareness (after memberlist's awareness.go). The score rises when this node
 * sees signs that it, not its peers, is the problem (failed probes that helpers did not confirm with
 * nacks, having to refute accusations) and falls with each successful probe. Timeouts are multiplied
 * by score + 1, so a slow node probes more patiently instead of accusing healthy peers.
 */
export class Awareness {
  private value = 0;

  /** @param maxMultiplier the score stays within 0 .. maxMultiplier − 1. */
  constructor(private readonly maxMultiplier: number) {}

  /** Adds `delta` (may be negative), clamped to the range. */
  applyDelta(delta: number): void {
    this.value = Math.min(this.maxMultiplier - 1, Math.max(0, this.value + delta));
  }

  /** The current score: 0 is healthy. */
  score(): number {
    return this.value;
  }

  /** `durationMs` × (score + 1). */
  scale(durationMs: number): number {
    return durationMs * (this.value + 1);
  }
}
