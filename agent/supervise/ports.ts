/**
 * The port allocator: every child gets a block of consecutive ports of the node's range (config
 * `firstPort..lastPort`) — one port for most, more for a child that listens on several (a ringd child:
 * agent/node/ringd-ports.ts) — the first of which is exported to it as PORT. Each port of a block is
 * its own entry in the store's `children` sublevel under `port:NNNNN`, naming the child, so a port is
 * never handed out twice, across agent restarts too, and a block is released whole. Allocations are
 * serialised in this process (the store is locked to one process), and each is written together with
 * the caller's own operations in one batch, so a child record and its ports appear or vanish together.
 *
 * Ports that something else on the host is already listening on are skipped (probed by binding the
 * dual-stack wildcard address), but not recorded: they are tried again next time. A block is handed
 * out only when every one of its ports is free, both here and on the host.
 */
import { createServer } from "node:net";
import * as v from "valibot";
import type { NodeStore, StoreOp } from "../store/store.ts";
import {
  InvalidSpecError,
  NameTakenError,
  PortRangeExhaustedError,
  SupervisorConfigError,
} from "./errors.ts";

/** The ports a node may hand to its children, both ends included. */
export interface PortRange {
  readonly firstPort: number;
  readonly lastPort: number;
}

/** Resolves true when nothing on the host listens on `port` (so a child may bind it). */
export type PortProbe = (port: number) => Promise<boolean>;

/** Key prefix of port allocations in the `children` sublevel. */
export const PORT_KEY_PREFIX = "port:";

/** What is stored per allocated port (each port of a block alike). */
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

/** Most ports one child may hold: a block is for the few ports a program listens on, not a range. */
export const MAX_CHILD_PORTS = 64;

/** Throw InvalidSpecError unless `count` is a whole number of ports, 1..MAX_CHILD_PORTS. */
export function checkPortCount(count: number): number {
  if (!Number.isSafeInteger(count) || count < 1 || count > MAX_CHILD_PORTS)
    throw new InvalidSpecError(
      `a child holds 1..${MAX_CHILD_PORTS} consecutive ports, got ${String(count)}; ask for fewer`,
    );
  return count;
}

/** "40100", or "40100-40104" for a block of 5: a child's ports as messages and listings show them. */
export function portBlockText(firstPort: number, count: number): string {
  return count <= 1 ? String(firstPort) : `${firstPort}-${firstPort + count - 1}`;
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

  /** The port `child` holds (the first of its block), if any. */
  portOf(child: string): number | undefined {
    return this.portsOf(child)[0];
  }

  /** Every port `child` holds, lowest first; empty if none. */
  portsOf(child: string): number[] {
    const held: number[] = [];
    for (const [port, allocation] of this.#byPort) if (allocation.child === child) held.push(port);
    return held.sort((a, b) => a - b);
  }

  /** Every allocation, by port. */
  allocations(): ReadonlyMap<number, PortAllocation> {
    return new Map(this.#byPort);
  }

  /**
   * Allocate a port to `child` and write it, with the operations `withOps(port)` returns, in one
   * batch: `allocateBlock` of one port.
   */
  allocate(child: string, nowMs: number, withOps: (port: number) => StoreOp[] = () => []): Promise<number> {
    return this.allocateBlock(child, 1, nowMs, withOps);
  }

  /**
   * Allocate `count` consecutive ports to `child` and write every one of them, with the operations
   * `withOps(firstPort)` returns, in one batch; resolves to the first port. PortRangeExhaustedError
   * when no `count` ports in a row are free (nothing is written), NameTakenError if the child already
   * holds ports, InvalidSpecError if `count` is not a whole number of ports. If the batch fails
   * nothing is allocated.
   */
  allocateBlock(
    child: string,
    count: number,
    nowMs: number,
    withOps: (firstPort: number) => StoreOp[] = () => [],
  ): Promise<number> {
    return this.#serial(async () => {
      checkPortCount(count);
      const held = this.portsOf(child);
      if (held.length > 0)
        throw new NameTakenError(
          `child "${child}" already holds ports ${portBlockText(held[0]!, held.length)}`,
        );
      const first = await this.#findFreeBlock(count);
      const allocation: PortAllocation = { child, allocatedMs: nowMs };
      const ports = Array.from({ length: count }, (_, i) => first + i);
      await this.#store.batch([
        ...ports.map(
          (port): StoreOp => ({ type: "put", sublevel: "children", key: portKey(port), value: allocation }),
        ),
        ...withOps(first),
      ]);
      for (const port of ports) this.#byPort.set(port, allocation);
      const next = first + count;
      this.#cursor = next > this.range.lastPort ? this.range.firstPort : next;
      return first;
    });
  }

  /**
   * Release every port `child` holds, deleting them in one batch with `withOps`. Resolves to the
   * first port released, or undefined if the child held none (then only `withOps` is written).
   */
  release(child: string, withOps: readonly StoreOp[] = []): Promise<number | undefined> {
    return this.#serial(async () => {
      const held = this.portsOf(child);
      const ops: StoreOp[] = held.map((port) => ({ type: "del", sublevel: "children", key: portKey(port) }));
      ops.push(...withOps);
      if (ops.length > 0) await this.#store.batch(ops);
      for (const port of held) this.#byPort.delete(port);
      return held[0];
    });
  }

  /**
   * The first port of `count` consecutive ones that are neither allocated nor busy on the host, the
   * search starting at the cursor and wrapping around. Each port is probed at most once per search.
   */
  async #findFreeBlock(count: number): Promise<number> {
    const { firstPort, lastPort } = this.range;
    const size = lastPort - firstPort + 1;
    const onHost = new Map<number, boolean>();
    const usable = async (port: number): Promise<boolean> => {
      if (this.#byPort.has(port)) return false;
      const known = onHost.get(port);
      if (known !== undefined) return known;
      const free = await this.#isPortFree(port);
      onHost.set(port, free);
      return free;
    };
    const starts = size - count + 1; // where a block may begin: firstPort .. lastPort - count + 1
    const from = this.#cursor - firstPort < starts ? this.#cursor - firstPort : 0;
    for (let i = 0; i < starts; i++) {
      const first = firstPort + ((from + i) % starts);
      let k = 0;
      while (k < count && (await usable(first + k))) k++;
      if (k === count) return first;
    }
    const allocated = [...this.#byPort.keys()].filter((p) => p >= firstPort && p <= lastPort).length;
    const busyOnHost = [...onHost.values()].filter((free) => !free).length;
    const where = `in ${firstPort}..${lastPort}: ${allocated} allocated to children, ${busyOnHost} in use by other programs on this host`;
    if (count === 1)
      throw new PortRangeExhaustedError(
        `no free port ${where}; remove a child or widen the node's port range`,
      );
    const rest = size - allocated - busyOnHost;
    throw new PortRangeExhaustedError(
      count > size
        ? `a block of ${count} consecutive ports does not fit in the node's range ${firstPort}..${lastPort} ` +
            `(${size} ports); widen the node's port range`
        : `no block of ${count} consecutive free ports ${where}, and the other ${rest} are not ${count} in a row; ` +
            "remove a child or widen the node's port range",
    );
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }
}
