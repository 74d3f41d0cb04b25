/**
 * The supervisor owns the children of one node. `create` checks everything first — the spec, the
 * strategy, the restart policy, the health checks, the name, the driver's own validation, a free
 * port — and changes nothing when it refuses. Each child's record and driver handle live in the
 * store's `children` sublevel, written in one batch per change (the port with the record).
 *
 * On `open` it reads the records back and asks each child's driver to `recover` the saved run: a
 * child that still runs is reattached, one that is gone is handled like an exit (the restart policy
 * decides), so nothing is orphaned and nothing runs twice. `close` stops watching and leaves the
 * children running for the next agent. Time comes from the Clock passed in; when the restart policy
 * gives up on a child, `onGiveUp` is called (the mesh layer turns it into a signed event).
 */
import { randomInt } from "node:crypto";
import { mkdir, rm } from "node:fs/promises";
import { isAbsolute, join, relative, resolve } from "node:path";
import { type Rng, seededRng } from "../../rings/index.ts";
import type { Clock, TimerId } from "../clock.ts";
import { decodeValue } from "../store/json-value.ts";
import type { NodeStore } from "../store/store.ts";
import {
  checkLogRotation,
  childLogPaths,
  DEFAULT_LOG_ROTATION,
  type FollowOptions,
  followChildLog,
  type LogRotation,
  prepareChildLog,
  rotateChildLog,
  type TailOptions,
  tailChildLog,
} from "./child-log.ts";
import {
  CHILD_KEY_PREFIX,
  CHILD_RECORD_VERSION,
  type ChildGiveUpEvent,
  type ChildInfo,
  type ChildRecord,
  childKey,
  childRecordSchema,
  type SupervisorEvent,
} from "./child-record.ts";
import type { ChildHandle, ChildSpec, Driver } from "./driver.ts";
import {
  NameTakenError,
  SupervisorClosedError,
  SupervisorConfigError,
  UnknownChildError,
  UnknownStrategyError,
} from "./errors.ts";
import { type HealthCheckInput, healthChecks } from "./health.ts";
import type { Prober } from "./health-probe.ts";
import { PortAllocator, type PortProbe, type PortRange } from "./ports.ts";
import { type DriverRegistry, driverRegistry, isClosableDriver } from "./registry.ts";
import { EMPTY_RESTART_HISTORY, type RestartPolicy, restartPolicy } from "./restart-policy.ts";
import { childSpec } from "./spec.ts";
import { SupervisedChild } from "./supervised-child.ts";

/** How long stop() waits after SIGTERM before SIGKILL, by default. */
export const DEFAULT_STOP_TIMEOUT_MS = 10_000;
/** How often logs are checked for rotation, by default. */
export const DEFAULT_LOG_CHECK_INTERVAL_MS = 10_000;

/** Options of Supervisor.open. */
export interface SupervisorOptions {
  readonly store: NodeStore;
  readonly clock: Clock;
  /** Absolute directory holding one directory per child; must lie outside the agent's state dir. */
  readonly childrenDir: string;
  /** The node's port range for children. */
  readonly ports: PortRange;
  /** Strategy names to drivers (default driverRegistry(): proc). */
  readonly drivers?: DriverRegistry;
  /** Randomness for backoff jitter (default: seeded from the OS). */
  readonly rng?: Rng;
  readonly stopTimeoutMs?: number;
  readonly logRotation?: LogRotation;
  readonly logCheckIntervalMs?: number;
  /** How to tell whether a port is free on the host (default: bind it). */
  readonly isPortFree?: PortProbe;
  /** How health checks probe (default: the real probes). */
  readonly prober?: Prober;
  /** The restart policy gave up on a child. */
  readonly onGiveUp?: (event: ChildGiveUpEvent) => void;
  /** Everything else that happens (for logs and tests). */
  readonly onEvent?: (event: SupervisorEvent) => void;
}

/** What `create` takes. Every field is checked; missing optional ones take their defaults. */
export interface CreateChildRequest {
  readonly spec: ChildSpec;
  /** A strategy name of the registry ("proc", ...). */
  readonly strategy: string;
  readonly restartPolicy?: Partial<RestartPolicy>;
  readonly health?: readonly HealthCheckInput[];
  /** Start it at once (default true). */
  readonly start?: boolean;
}

/** A driver for a strategy that is not registered any more: every use says so. */
function missingDriver(strategy: string, known: readonly string[]): Driver {
  const refuse = async (): Promise<never> => {
    throw new UnknownStrategyError(
      `no driver is registered for strategy "${strategy}" (known: ${known.join(", ")}); add it to the agent's drivers`,
    );
  };
  return {
    name: strategy,
    validate: refuse,
    start: refuse,
    wait: refuse,
    stop: refuse,
    recover: refuse,
    cleanup: refuse,
  };
}

/** The children of one node. Open with `Supervisor.open`; close before closing the store. */
export class Supervisor {
  readonly #o: SupervisorOptions;
  readonly #registry: DriverRegistry;
  readonly #drivers = new Map<string, Driver>();
  readonly #children = new Map<string, SupervisedChild>();
  readonly #pending = new Set<string>();
  readonly #rng: Rng;
  readonly #rotation: LogRotation;
  readonly #ports: PortAllocator;
  #rotateTimer: TimerId | null = null;
  #closed = false;

  private constructor(options: SupervisorOptions, ports: PortAllocator) {
    this.#o = options;
    this.#registry = options.drivers ?? driverRegistry();
    this.#rng = options.rng ?? seededRng(randomInt(2 ** 31));
    this.#rotation = checkLogRotation(options.logRotation ?? DEFAULT_LOG_ROTATION);
    this.#ports = ports;
  }

  /** Check the options, load the children saved in the store and recover each one. */
  static async open(options: SupervisorOptions): Promise<Supervisor> {
    const { childrenDir, store } = options;
    if (!isAbsolute(childrenDir))
      throw new SupervisorConfigError(`childrenDir must be absolute, got ${childrenDir}`);
    const inside = (a: string, b: string) => {
      const rel = relative(resolve(b), resolve(a));
      return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel));
    };
    if (inside(childrenDir, store.dir) || inside(store.dir, childrenDir))
      throw new SupervisorConfigError(
        `childrenDir ${childrenDir} and the agent's state dir ${store.dir} must not contain one another: children must not reach the agent's state`,
      );
    for (const [field, value] of [
      ["stopTimeoutMs", options.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS],
      ["logCheckIntervalMs", options.logCheckIntervalMs ?? DEFAULT_LOG_CHECK_INTERVAL_MS],
    ] as const)
      if (!Number.isSafeInteger(value) || value < 1)
        throw new SupervisorConfigError(`${field} must be a positive whole number of ms, got ${value}`);
    const ports = await PortAllocator.open(store, options.ports, { isPortFree: options.isPortFree });
    const supervisor = new Supervisor(options, ports);
    await mkdir(childrenDir, { recursive: true, mode: 0o700 });
    await supervisor.#load();
    supervisor.#scheduleRotation();
    return supervisor;
  }

  /** Check a request, allocate, persist and (by default) start the child. Refusals change nothing. */
  async create(request: CreateChildRequest): Promise<ChildInfo> {
    this.#checkOpen();
    const spec = childSpec(request.spec);
    const { name } = spec;
    if (typeof request.strategy !== "string" || !this.#registry.has(request.strategy))
      throw new UnknownStrategyError(
        `no strategy "${String(request.strategy)}"; known: ${[...this.#registry.keys()].join(", ")}`,
      );
    const policy = restartPolicy(request.restartPolicy ?? {});
    const health = healthChecks(request.health ?? []);
    if (this.#children.has(name) || this.#pending.has(name))
      throw new NameTakenError(
        `a child named "${name}" already exists on this node; remove it first or pick another name`,
      );
    this.#pending.add(name);
    let child: SupervisedChild;
    try {
      if ((await this.#o.store.sublevel("children").get(childKey(name))) !== undefined)
        throw new NameTakenError(
          `the store already holds a record for child "${name}" (unreadable?); remove it first`,
        );
      const driver = this.#driver(request.strategy);
      await driver.validate(spec);
      const dir = join(this.#o.childrenDir, name);
      try {
        await mkdir(dir, { mode: 0o700 });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "EEXIST")
          throw new NameTakenError(
            `directory ${dir} already exists and is not a known child's: move it away or pick another name`,
          );
        throw err;
      }
      let record: ChildRecord | undefined;
      try {
        await prepareChildLog(dir);
        await this.#ports.allocate(name, this.#o.clock.now(), (port) => {
          record = {
            version: CHILD_RECORD_VERSION,
            spec,
            strategy: request.strategy,
            restartPolicy: policy,
            health,
            port,
            dir,
            createdMs: this.#o.clock.now(),
            desired: request.start === false ? "stopped" : "running",
            handle: null,
            history: EMPTY_RESTART_HISTORY,
            restarts: 0,
            gaveUp: null,
            lastExit: null,
          };
          return [{ type: "put", sublevel: "children", key: childKey(name), value: record }];
        });
      } catch (err) {
        await rm(dir, { recursive: true, force: true });
        throw err;
      }
      child = this.#adopt(record!);
    } finally {
      this.#pending.delete(name);
    }
    if (request.start !== false) await child.begin();
    return child.info();
  }

  /** Start a stopped (or given-up) child; its restart history starts afresh. */
  start(name: string): Promise<void> {
    return this.#child(name).start();
  }

  /** Stop a child (SIGTERM, then SIGKILL after stopTimeoutMs); it stays stopped across agent restarts. */
  stop(name: string): Promise<void> {
    return this.#child(name).stop();
  }

  /** Stop and start a child again; its restart history starts afresh. */
  restart(name: string): Promise<void> {
    return this.#child(name).restart();
  }

  /** Stop a child and remove everything of it: driver leftovers, its directory, its port, its record. */
  async remove(name: string): Promise<void> {
    const child = this.#child(name);
    await child.remove((handle) => this.#cleanup(child, handle));
  }

  /** Every child, by name. */
  list(): ChildInfo[] {
    return [...this.#children.values()].map((c) => c.info()).sort((a, b) => a.name.localeCompare(b.name));
  }

  /** One child; UnknownChildError if there is none of that name. */
  get(name: string): ChildInfo {
    return this.#child(name).info();
  }

  /** The last lines of a child's output. */
  logs(name: string, options: TailOptions = {}): Promise<string> {
    return tailChildLog(childLogPaths(this.#child(name).record.dir), options);
  }

  /** A child's output as it is written, until `options.signal` aborts. */
  followLogs(name: string, options: FollowOptions = {}): AsyncGenerator<Buffer, void, undefined> {
    return followChildLog(childLogPaths(this.#child(name).record.dir), options);
  }

  /** Stop watching; children keep running for the next agent. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#rotateTimer !== null) this.#o.clock.clearTimer(this.#rotateTimer);
    this.#rotateTimer = null;
    await Promise.all([...this.#children.values()].map((c) => c.close()));
    for (const driver of this.#drivers.values()) if (isClosableDriver(driver)) await driver.close();
  }

  #checkOpen(): void {
    if (this.#closed) throw new SupervisorClosedError("this supervisor was closed; open a new one");
  }

  #child(name: string): SupervisedChild {
    this.#checkOpen();
    const child = this.#children.get(name);
    if (child === undefined) throw new UnknownChildError(`no child named "${name}" on this node`);
    return child;
  }

  #driver(strategy: string): Driver {
    let driver = this.#drivers.get(strategy);
    if (driver === undefined) {
      const factory = this.#registry.get(strategy);
      driver =
        factory === undefined
          ? missingDriver(strategy, [...this.#registry.keys()])
          : factory({ agentStateDir: this.#o.store.dir });
      this.#drivers.set(strategy, driver);
    }
    return driver;
  }

  #emit(event: SupervisorEvent): void {
    try {
      this.#o.onEvent?.(event);
    } catch {
      // A listener's failure must not break supervision.
    }
  }

  #adopt(record: ChildRecord): SupervisedChild {
    const child = new SupervisedChild(record, {
      driver: this.#driver(record.strategy),
      clock: this.#o.clock,
      rng: this.#rng,
      stopTimeoutMs: this.#o.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS,
      logPath: childLogPaths(record.dir).current,
      prober: this.#o.prober,
      persist: (r) => this.#o.store.putJson("children", childKey(r.spec.name), r),
      emit: (e) => this.#emit(e),
      giveUp: (e) => {
        try {
          this.#o.onGiveUp?.(e);
        } catch {
          // as for #emit
        }
      },
    });
    this.#children.set(record.spec.name, child);
    return child;
  }

  /** Read every record, check it fully, and recover (or finish removing) each child. */
  async #load(): Promise<void> {
    const records: ChildRecord[] = [];
    const range = { gte: CHILD_KEY_PREFIX, lt: `${CHILD_KEY_PREFIX}\uffff` };
    for await (const [key, raw] of this.#o.store.sublevel("children").iterator(range)) {
      try {
        const stored = decodeValue(childRecordSchema, raw, `children/${key}`) as unknown as ChildRecord;
        const spec = childSpec(stored.spec);
        if (childKey(spec.name) !== key) throw new Error(`record of "${spec.name}" is stored under ${key}`);
        records.push({
          ...stored,
          spec,
          restartPolicy: restartPolicy(stored.restartPolicy),
          health: healthChecks(stored.health),
        });
      } catch (err) {
        const error = err instanceof Error ? err.message : String(err);
        this.#emit({ kind: "record-unreadable", key, error, atMs: this.#o.clock.now() });
      }
    }
    await Promise.all(
      records.map(async (record) => {
        const child = this.#adopt(record);
        await child.recover();
        if (record.desired === "removed") await child.remove((handle) => this.#cleanup(child, handle));
      }),
    );
  }

  async #cleanup(child: SupervisedChild, lastHandle: ChildHandle | null): Promise<void> {
    const { spec, strategy, dir } = child.record;
    if (lastHandle !== null) await this.#driver(strategy).cleanup(lastHandle);
    await rm(dir, { recursive: true, force: true });
    await this.#ports.release(spec.name, [{ type: "del", sublevel: "children", key: childKey(spec.name) }]);
    this.#children.delete(spec.name);
    this.#emit({ kind: "removed", name: spec.name, atMs: this.#o.clock.now() });
  }

  #scheduleRotation(): void {
    if (this.#closed) return;
    this.#rotateTimer = this.#o.clock.setTimer(
      this.#o.logCheckIntervalMs ?? DEFAULT_LOG_CHECK_INTERVAL_MS,
      () => void this.#rotateAll(),
    );
  }

  async #rotateAll(): Promise<void> {
    for (const child of this.#children.values())
      try {
        await rotateChildLog(childLogPaths(child.record.dir), this.#rotation);
      } catch (err) {
        const error = err instanceof Error ? err.message : String(err);
        this.#emit({
          kind: "error",
          name: child.name,
          error: `log rotation: ${error}`,
          atMs: this.#o.clock.now(),
        });
      }
    this.#scheduleRotation();
  }
}
