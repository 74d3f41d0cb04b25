/**
 * The supervisor owns the children of one node. `create` checks everything first — the spec, the
 * strategy, the restart policy, the health checks, the name, the driver's own validation, a free
 * port — and changes nothing when it refuses; when the first start of a new child fails, the creation
 * is undone and the driver's error is thrown, so `create` either leaves a started child or nothing.
 * Each child's record and driver handle live in the store's `children` sublevel, written in one batch
 * per change (the ports with the record). Files: child-layout.ts (the child's directory and, beside
 * it, its log).
 *
 * On `open` it reads the records back and asks each child's driver to `recover` the saved run: a
 * child that still runs is reattached, one that is gone is handled like an exit (the restart policy
 * decides), so nothing is orphaned and nothing runs twice. `close` stops watching and leaves the
 * children running for the next agent. Time comes from the Clock passed in; when the restart policy
 * gives up on a child, `onGiveUp` is called (the mesh layer turns it into a signed event).
 */
import { randomInt } from "node:crypto";
import { rm } from "node:fs/promises";
import { type Rng, seededRng } from "../../rings/index.ts";
import type { Clock, TimerId } from "../clock.ts";
import { decodeValue } from "../store/json-value.ts";
import type { NodeStore } from "../store/store.ts";
import {
  checkChildrenDir,
  childLayout,
  layoutOfDir,
  makeChildLayout,
  prepareChildrenDir,
} from "./child-layout.ts";
import {
  checkLogRotation,
  DEFAULT_LOG_ROTATION,
  type FollowOptions,
  followChildLog,
  type LogRotation,
  rotateChildLog,
  type TailOptions,
  tailChildLog,
} from "./child-log.ts";
import { type LogCursor, logCursorAtEnd, readChildLogSince } from "./child-log-cursor.ts";
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
import { missingDriver, startErrorRecorder } from "./driver-wrappers.ts";
import {
  ChildStartError,
  NameTakenError,
  SupervisorClosedError,
  SupervisorConfigError,
  UnknownChildError,
  UnknownStrategyError,
} from "./errors.ts";
import { type HealthCheckInput, healthChecks } from "./health.ts";
import type { Prober } from "./health-probe.ts";
import { checkPortCount, PortAllocator, type PortProbe, type PortRange } from "./ports.ts";
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
  /** Strategy names to drivers (default driverRegistry(): proc, unix-user, jail, vm). */
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
  /**
   * How many consecutive ports it gets (default 1): for a program listening on several, at fixed
   * offsets from PORT (the first of them), such as a ringd child (agent/node/ringd-ports.ts).
   */
  readonly portCount?: number;
  /** Start it at once (default true). */
  readonly start?: boolean;
}

/** The children of one node. Open with `Supervisor.open`; close before closing the store. */
export class Supervisor {
  readonly #o: SupervisorOptions;
  readonly #registry: DriverRegistry;
  readonly #drivers = new Map<string, Driver>();
  /** The same drivers, each behind a recorder of start errors (what the children use). */
  readonly #recorded = new Map<string, Driver>();
  /**
   * Children whose first start `create` awaits, with the error of that start if it failed: a
   * give-up then is create's error, not an event.
   */
  readonly #creating = new Map<string, unknown>();
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
    checkChildrenDir(childrenDir, store.dir);
    for (const [field, value] of [
      ["stopTimeoutMs", options.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS],
      ["logCheckIntervalMs", options.logCheckIntervalMs ?? DEFAULT_LOG_CHECK_INTERVAL_MS],
    ] as const)
      if (!Number.isSafeInteger(value) || value < 1)
        throw new SupervisorConfigError(`${field} must be a positive whole number of ms, got ${value}`);
    const ports = await PortAllocator.open(store, options.ports, { isPortFree: options.isPortFree });
    const supervisor = new Supervisor(options, ports);
    await prepareChildrenDir(childrenDir);
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
    const portCount = checkPortCount(request.portCount ?? 1);
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
      const layout = childLayout(this.#o.childrenDir, name);
      await makeChildLayout(layout);
      let record: ChildRecord | undefined;
      try {
        await this.#ports.allocateBlock(name, portCount, this.#o.clock.now(), (port) => {
          record = {
            version: CHILD_RECORD_VERSION,
            spec,
            strategy: request.strategy,
            restartPolicy: policy,
            health,
            port,
            portCount,
            dir: layout.dir,
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
        await rm(layout.root, { recursive: true, force: true });
        throw err;
      }
      child = this.#adopt(record!);
    } finally {
      this.#pending.delete(name);
    }
    if (request.start === false) return child.info();
    this.#creating.set(name, undefined);
    let failed: unknown;
    try {
      await child.begin();
    } finally {
      failed = this.#creating.get(name);
      this.#creating.delete(name);
    }
    if (failed === undefined || child.liveHandle !== null) return child.info();
    // The first start failed: undo the creation and say why, with the driver's own error.
    await child.remove((handle) => this.#cleanup(child, handle));
    throw failed instanceof Error
      ? failed
      : new ChildStartError(`child ${name} did not start: ${String(failed)}`);
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
    return tailChildLog(layoutOfDir(this.#child(name).record.dir).log, options);
  }

  /** A child's output as it is written, until `options.signal` aborts. */
  followLogs(name: string, options: FollowOptions = {}): AsyncGenerator<Buffer, void, undefined> {
    return followChildLog(layoutOfDir(this.#child(name).record.dir).log, options);
  }

  /**
   * Up to `maxBytes` of a child's output written since `cursor` (null: start at the end now), and the
   * cursor to ask again with: following a log one request at a time (`ringctl child logs --follow`).
   */
  async readLogs(
    name: string,
    cursor: LogCursor | null,
    maxBytes: number,
  ): Promise<{ bytes: Buffer; cursor: LogCursor }> {
    const paths = layoutOfDir(this.#child(name).record.dir).log;
    if (cursor === null) return { bytes: Buffer.alloc(0), cursor: await logCursorAtEnd(paths) };
    return readChildLogSince(paths, cursor, maxBytes);
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
    let recorded = this.#recorded.get(strategy);
    if (recorded === undefined) {
      const factory = this.#registry.get(strategy);
      const driver =
        factory === undefined
          ? missingDriver(strategy, [...this.#registry.keys()])
          : factory({ agentStateDir: this.#o.store.dir });
      this.#drivers.set(strategy, driver);
      recorded = startErrorRecorder(driver, (name, err) => {
        if (this.#creating.has(name)) this.#creating.set(name, err);
      });
      this.#recorded.set(strategy, recorded);
    }
    return recorded;
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
      logPath: layoutOfDir(record.dir).log.current,
      prober: this.#o.prober,
      persist: (r) => this.#o.store.putJson("children", childKey(r.spec.name), r),
      emit: (e) => this.#emit(e),
      giveUp: (e) => {
        if (this.#creating.has(e.name)) return;
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
    await rm(layoutOfDir(dir).root, { recursive: true, force: true });
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
        await rotateChildLog(layoutOfDir(child.record.dir).log, this.#rotation);
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
