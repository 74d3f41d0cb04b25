/**
 * Runs a child's health checks on a clock: each check probes on its own schedule (quickly while the
 * run is coming up, every `intervalMs` after), never overlapping itself, and the monitor reports when
 * the child's combined status changes. One monitor per run: the supervisor makes a new one each time
 * it starts the child and stops the old one.
 */
import type { Clock, TimerId } from "../clock.ts";
import {
  combineHealth,
  type HealthCheck,
  type HealthState,
  type HealthStatus,
  healthStep,
  initialHealth,
  probeDelayMs,
} from "./health.ts";
import { type Prober, type ProbeTarget, probe } from "./health-probe.ts";

/** Options of a HealthMonitor. */
export interface HealthMonitorOptions {
  readonly checks: readonly HealthCheck[];
  readonly target: ProbeTarget;
  readonly clock: Clock;
  /** Called when the combined status changes, with what the deciding check last said. */
  readonly onChange: (status: HealthStatus, detail: string) => void;
  /** How to probe (default: the real probes). */
  readonly prober?: Prober;
}

/** The health checks of one run of one child. */
export class HealthMonitor {
  readonly #options: HealthMonitorOptions;
  readonly #states: HealthState[];
  readonly #timers: (TimerId | undefined)[];
  #status: HealthStatus;
  #stopped = false;

  /** A monitor for a run that started at `startedMs`; call `start()` to begin probing. */
  constructor(options: HealthMonitorOptions, startedMs: number) {
    this.#options = options;
    this.#states = options.checks.map(() => initialHealth(startedMs));
    this.#timers = options.checks.map(() => undefined);
    this.#status = options.checks.length === 0 ? "healthy" : "starting";
  }

  /** The combined status now ("healthy" at once for a child with no checks). */
  get status(): HealthStatus {
    return this.#status;
  }

  /** Each check's state, in the order of the checks. */
  get states(): readonly HealthState[] {
    return [...this.#states];
  }

  /** Schedule every check's first probe. */
  start(): void {
    this.#options.checks.forEach((check, i) => {
      this.#schedule(i, probeDelayMs(check, "starting"));
    });
  }

  /** Stop probing; results of probes in flight are dropped. Idempotent. */
  stop(): void {
    this.#stopped = true;
    for (const id of this.#timers) if (id !== undefined) this.#options.clock.clearTimer(id);
    this.#timers.fill(undefined);
  }

  #schedule(i: number, delayMs: number): void {
    if (this.#stopped) return;
    this.#timers[i] = this.#options.clock.setTimer(delayMs, () => {
      this.#timers[i] = undefined;
      void this.#probe(i);
    });
  }

  async #probe(i: number): Promise<void> {
    const check = this.#options.checks[i]!;
    const prober = this.#options.prober ?? probe;
    let result: { ok: boolean; detail: string };
    try {
      result = await prober(check, this.#options.target);
    } catch (err) {
      result = { ok: false, detail: `probe failed: ${(err as Error).message}` };
    }
    if (this.#stopped) return;
    const step = healthStep(this.#states[i]!, result, check, this.#options.clock.now());
    this.#states[i] = step.state;
    const combined = combineHealth(this.#states.map((s) => s.status));
    if (combined !== this.#status) {
      this.#status = combined;
      this.#options.onChange(combined, `${check.kind} check: ${step.state.lastDetail}`);
    }
    if (combined !== "unhealthy") this.#schedule(i, step.nextProbeInMs);
  }
}
