/**
 * The port allocator: every child gets one port of the node's range (config `firstPort..lastPort`),
 * exported to it as PORT. Allocations live in the store's `children` sublevel under `port:NNNNN`, so
 * a port is never handed out twice, across agent restarts too; allocations are serialised in this
 * process (the store is locked to one process), and each is written together with the caller's own
 * operations in one batch, so a child record and its port appear or vanish together.
 *
 * Ports that something else on the host is already listening on are skipped (probed by binding the
 * dual-stack wildcard address), but not recorded: they are tried again next time.
 */
import { createServer } from "node:net";
import * as v from "valibot";
import type { NodeStore, StoreOp } from "../store/store.ts";
import { NameTakenError, PortRangeExhaustedError, SupervisorConfigError } from "./errors.ts";

/** The ports a node may hand to its children, both ends included. */
export interface PortRange {
  readonly firstPort: number;
  readonly lastPort: number;
}

/** Resolves true when nothing on the host listens on `port` (so a child may bind it). */
export type PortProbe = (port: number) => Promise<boolean>;

/** Key prefix of port allocations in the `children` sublevel. */
export const PORT_KEY_PREFIX = "port:";

/** What is stored per allocated port. */
export interface PortAllocation {
  readonly child: string;
  readonly allocatedMs: number;
}

const allocationSchema = v.strictObject({
  child: v.pipe(v.string(), v.minLength(1), v.maxLength(64)),
  allocatedMs: v.pipe(v.number(), v.safeInteger(), v.minValue(0)),
});

/** The store key of one port (zero-padded so keys sort by port). */
export function portKey(port: number): string {
  return PORT_KEY_PREFIX + String(port).padStart(5, "0");
}

/** Throw SupervisorConfigError unless `range` is whole ports within 1..65535, first <= last. */
export function checkPortRange(range: PortRange): PortRange {
  const { firstPort, lastPort } = range;
  for (const [field, value] of [
    ["firstPort", firstPort],
    ["lastPort", lastPort],
  ] as const)
    if (!Number.isSafeInteger(value) || value < 1 || value > 65_535)
      throw new SupervisorConfigError(`port range ${field} must be a port number 1..65535, got ${value}`);
  if (firstPort > lastPort)
    throw new SupervisorConfigError(
      `port range is empty: firstPort ${firstPort} is above lastPort ${lastPort}`,
    );
  return { firstPort, lastPort };
}

function tryListen(port: number, host: string): Promise<string | null> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? "error"));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(null)));
  });
}

/**
 * The default probe: binds `port` on `::` (dual stack, so it clashes with IPv4 and IPv6 listeners on
 * any address), or on 0.0.0.0 where IPv6 is off. Any error (in use, not permitted) counts as taken.
 */
export const hostPortFree: PortProbe = async (port) => {
  const v6 = await tryListen(port, "::");
  if (v6 === null) return true;
  if (v6 !== "EAFNOSUPPORT" && v6 !== "EADDRNOTAVAIL") return false;
  return (await tryListen(port, "0.0.0.0")) === null;
};

/** Options of PortAllocator.open. */
export interface PortAllocatorOptions {
  /** How to tell whether a port is free on the host (default hostPortFree). */
  readonly isPortFree?: PortProbe;
}

/** Hands out the ports of one node's range. Open it with `PortAllocator.open`. */
export class PortAllocator {
  /** The range this allocator hands out from. */
  readonly range: PortRange;
  readonly #store: NodeStore;
  readonly #isPortFree: PortProbe;
  readonly #byPort = new Map<number, PortAllocation>();
  #cursor: number;
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(store: NodeStore, range: PortRange, isPortFree: PortProbe) {
    this.#store = store;
    this.range = range;
    this.#isPortFree = isPortFree;
    this.#cursor = range.firstPort;
  }

  /** Load the allocations saved in `store`; SupervisorConfigError if `range` is unusable. */
  static async open(
    store: NodeStore,
    range: PortRange,
    options: PortAllocatorOptions = {},
  ): Promise<PortAllocator> {
    const allocator = new PortAllocator(store, checkPortRange(range), options.isPortFree ?? hostPortFree);
    for (const [key, allocation] of await store.listJson("children", PORT_KEY_PREFIX, allocationSchema)) {
      const port = Number(key.slice(PORT_KEY_PREFIX.length));
      allocator.#byPort.set(port, allocation);
      if (port >= allocator.#cursor && port < range.lastPort) allocator.#cursor = port + 1;
    }
    return allocator;
  }

  /** The port `child` holds, if any. */
  portOf(child: string): number | undefined {
    for (const [port, allocation] of this.#byPort) if (allocation.child === child) return port;
    return undefined;
  }

  /** Every allocation, by port. */
  allocations(): ReadonlyMap<number, PortAllocation> {
    return new Map(this.#byPort);
  }

  /**
   * Allocate a port to `child` and write it, with the operations `withOps(port)` returns, in one
   * batch. PortRangeExhaustedError when no port is left (nothing is written), NameTakenError if the
   * child already holds one. If the batch fails nothing is allocated.
   */
  allocate(child: string, nowMs: number, withOps: (port: number) => StoreOp[] = () => []): Promise<number> {
    return this.#serial(async () => {
      const held = this.portOf(child);
      if (held !== undefined) throw new NameTakenError(`child "${child}" already holds port ${held}`);
      const port = await this.#findFree();
      const allocation: PortAllocation = { child, allocatedMs: nowMs };
      await this.#store.batch([
        { type: "put", sublevel: "children", key: portKey(port), value: allocation },
        ...withOps(port),
      ]);
      this.#byPort.set(port, allocation);
      this.#cursor = port === this.range.lastPort ? this.range.firstPort : port + 1;
      return port;
    });
  }

  /**
   * Release the port `child` holds, deleting it in one batch with `withOps`. Resolves to the port
   * released, or undefined if the child held none (then only `withOps` is written).
   */
  release(child: string, withOps: readonly StoreOp[] = []): Promise<number | undefined> {
    return this.#serial(async () => {
      const port = this.portOf(child);
      const ops: StoreOp[] =
        port === undefined ? [] : [{ type: "del", sublevel: "children", key: portKey(port) }];
      ops.push(...withOps);
      if (ops.length > 0) await this.#store.batch(ops);
      if (port !== undefined) this.#byPort.delete(port);
      return port;
    });
  }

  async #findFree(): Promise<number> {
    const { firstPort, lastPort } = this.range;
    const size = lastPort - firstPort + 1;
    let busyOnHost = 0;
    let allocated = 0;
    for (let i = 0; i < size; i++) {
      const port = firstPort + ((this.#cursor - firstPort + i) % size);
      if (this.#byPort.has(port)) {
        allocated++;
        continue;
      }
      if (await this.#isPortFree(port)) return port;
      busyOnHost++;
    }
    throw new PortRangeExhaustedError(
      `no free port in ${firstPort}..${lastPort}: ${allocated} allocated to children, ${busyOnHost} in use ` +
        `by other programs on this host; remove a child or widen the node's port range`,
    );
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }
}
