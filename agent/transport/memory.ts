/**
 * The in-process network: many nodes in one process, with latency, jitter, loss, partitions, slow
 * nodes and per-link faults, all scheduled on a Clock (a VirtualClock in simulations) and a seeded
 * Rng, so a simulated run replays exactly.
 *
 * Decisions (loss, partition, link down) are taken when a frame is sent; at delivery time the only
 * check is whether an open endpoint still holds the destination address. Frames are copied on send.
 * No module-level state: each `memoryNetwork()` is an independent network.
 */
import type { Rng } from "../../rings/rng.ts";
import type { Clock } from "../clock.ts";
import type { SendRefusal, Transport, TransportFactory, TransportServices } from "./transport.ts";

/** Default largest frame (256 KiB, the protocol's link frame limit). */
export const DEFAULT_MEMORY_MAX_FRAME_BYTES = 256 * 1024;
/** Prefix of addresses the network assigns when a node asks for none: `mem-1`, `mem-2`, ... */
export const ASSIGNED_ADDRESS_PREFIX = "mem-";

/** A node asked for an address that an open endpoint on the same network already holds. */
export class AddressInUseError extends Error {
  /** The contested address. */
  readonly address: string;
  constructor(address: string, options?: { cause?: unknown }) {
    super(`memory address already in use: ${address}`, options);
    this.name = new.target.name;
    this.address = address;
  }
}

/** A network or link option is out of range (negative latency, loss outside [0, 1], ...). */
export class InvalidNetworkOptionError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Options of a memory network. */
export interface MemoryNetworkOptions {
  /** Schedules deliveries. */
  readonly clock: Clock;
  /** Draws jitter and loss (use `seededRng` for replayable runs). */
  readonly rng: Rng;
  /** One-way delay of every frame (default 0). */
  readonly latencyMs?: number;
  /** Extra delay drawn uniformly from [0, jitterMs) per frame (default 0); frames may reorder. */
  readonly jitterMs?: number;
  /** Probability in [0, 1] that a frame is lost (default 0). */
  readonly lossRate?: number;
  /** Largest frame every endpoint carries (default DEFAULT_MEMORY_MAX_FRAME_BYTES). */
  readonly maxFrameBytes?: number;
}

/** Per-link overrides; each field left out keeps its current value. */
export interface LinkOptions {
  /** One-way delay on this link, replacing the network's latencyMs. */
  readonly latencyMs?: number;
  /** Loss probability on this link, replacing the network's lossRate. */
  readonly lossRate?: number;
  /** When true, every frame on this link is dropped (counted as dropped by partition). */
  readonly down?: boolean;
}

/** Counters of a memory network, as a plain snapshot. */
export interface MemoryNetworkStats {
  /** Frames accepted by send() (refusals excluded). */
  readonly sent: number;
  /** Frames handed to a receiver's handler. */
  readonly delivered: number;
  /** Frames lost to the loss rate. */
  readonly droppedByLoss: number;
  /** Frames dropped by a partition or a link that is down. */
  readonly droppedByPartition: number;
  /** Frames whose destination was closed, gone, or had no handler when they arrived. */
  readonly droppedNoReceiver: number;
  /** Frames accepted and not yet delivered or dropped. */
  readonly inFlight: number;
  /** Sends refused locally, all reasons. */
  readonly refused: number;
  /** Sends refused locally, per reason. */
  readonly refusedByReason: Readonly<Record<SendRefusal, number>>;
}

/** An in-process network; endpoints made by its factory reach each other by address. */
export interface MemoryNetwork {
  /** A transport factory for this network (`await net.memory()({ listen: "n1" })`). */
  memory(): TransportFactory;
  /** Override latency, loss or up/down on the link between `a` and `b`, both directions. */
  setLink(a: string, b: string, options: LinkOptions): void;
  /** Drop every frame between a member of `groupA` and a member of `groupB`, both ways, until heal(). */
  partition(groupA: readonly string[], groupB: readonly string[]): void;
  /** Remove every partition. Per-link overrides (setLink) and slow() stay. */
  heal(): void;
  /** Delay every frame to or from `address` by `extraLatencyMs` more (0 restores normal speed). */
  slow(address: string, extraLatencyMs: number): void;
  /** Addresses of the open endpoints. */
  addresses(): string[];
  /** A snapshot of the counters. */
  stats(): MemoryNetworkStats;
}

interface Link {
  latencyMs?: number;
  lossRate?: number;
  down?: boolean;
}

interface Endpoint {
  readonly address: string;
  handler: ((from: string, frame: Uint8Array) => void) | undefined;
}

function checkDelay(name: string, value: number | undefined): void {
  if (value !== undefined && !(value >= 0 && Number.isFinite(value))) {
    throw new InvalidNetworkOptionError(`${name} must be a finite number >= 0, got ${value}`);
  }
}

function checkRate(name: string, value: number | undefined): void {
  if (value !== undefined && !(value >= 0 && value <= 1)) {
    throw new InvalidNetworkOptionError(`${name} must be in [0, 1], got ${value}`);
  }
}

/** Build an in-process network scheduled on `opts.clock`, with randomness from `opts.rng`. */
export function memoryNetwork(opts: MemoryNetworkOptions): MemoryNetwork {
  const { clock, rng } = opts;
  const baseLatencyMs = opts.latencyMs ?? 0;
  const jitterMs = opts.jitterMs ?? 0;
  const baseLossRate = opts.lossRate ?? 0;
  const maxFrameBytes = opts.maxFrameBytes ?? DEFAULT_MEMORY_MAX_FRAME_BYTES;
  checkDelay("latencyMs", baseLatencyMs);
  checkDelay("jitterMs", jitterMs);
  checkRate("lossRate", baseLossRate);
  if (!(Number.isInteger(maxFrameBytes) && maxFrameBytes >= 0)) {
    throw new InvalidNetworkOptionError(`maxFrameBytes must be an integer >= 0, got ${maxFrameBytes}`);
  }

  const endpoints = new Map<string, Endpoint>();
  const links = new Map<string, Map<string, Link>>(); // both directions stored
  const slowMs = new Map<string, number>();
  const partitions: Array<{ a: ReadonlySet<string>; b: ReadonlySet<string> }> = [];
  let nextAssigned = 1;
  let sent = 0;
  let delivered = 0;
  let droppedByLoss = 0;
  let droppedByPartition = 0;
  let droppedNoReceiver = 0;
  const refusedByReason: Record<SendRefusal, number> = { "too-large": 0, closed: 0, "unknown-address": 0 };

  const linkOf = (a: string, b: string): Link | undefined => links.get(a)?.get(b);

  const partitioned = (from: string, to: string): boolean => {
    for (const p of partitions) {
      if ((p.a.has(from) && p.b.has(to)) || (p.b.has(from) && p.a.has(to))) return true;
    }
    return false;
  };

  const deliver = (to: Endpoint, from: string, frame: Uint8Array): void => {
    const current = endpoints.get(to.address);
    const handler = current?.handler;
    if (current === undefined || handler === undefined) {
      droppedNoReceiver++;
      return;
    }
    delivered++;
    handler(from, frame);
  };

  const route = (from: string, to: string, frame: Uint8Array): SendRefusal | null => {
    if (frame.byteLength > maxFrameBytes) {
      refusedByReason["too-large"]++;
      return "too-large";
    }
    const target = endpoints.get(to);
    if (target === undefined) {
      refusedByReason["unknown-address"]++;
      return "unknown-address";
    }
    sent++;
    const link = links.size === 0 ? undefined : linkOf(from, to);
    if (link?.down === true || (partitions.length > 0 && partitioned(from, to))) {
      droppedByPartition++;
      return null;
    }
    const lossRate = link?.lossRate ?? baseLossRate;
    if (lossRate > 0 && rng() < lossRate) {
      droppedByLoss++;
      return null;
    }
    let delayMs = link?.latencyMs ?? baseLatencyMs;
    if (jitterMs > 0) delayMs += rng() * jitterMs;
    if (slowMs.size > 0) delayMs += (slowMs.get(from) ?? 0) + (slowMs.get(to) ?? 0);
    const copy = frame.slice();
    clock.setTimer(delayMs, () => deliver(target, from, copy));
    return null;
  };

  const open = async (services: TransportServices): Promise<Transport> => {
    let address = services.listen;
    if (address === undefined) {
      do address = ASSIGNED_ADDRESS_PREFIX + nextAssigned++;
      while (endpoints.has(address));
    } else if (endpoints.has(address)) {
      throw new AddressInUseError(address);
    }
    const endpoint: Endpoint = { address, handler: undefined };
    endpoints.set(address, endpoint);
    let closed = false;
    const transport: Transport = {
      address,
      maxFrameBytes,
      send(to, frame) {
        if (closed) {
          refusedByReason.closed++;
          return "closed";
        }
        return route(address, to, frame);
      },
      onFrame(handler) {
        endpoint.handler = handler;
      },
      async close() {
        if (closed) return;
        closed = true;
        endpoint.handler = undefined;
        if (endpoints.get(address) === endpoint) endpoints.delete(address);
      },
    };
    return transport;
  };

  return {
    memory: () => open,
    setLink(a, b, options) {
      checkDelay("latencyMs", options.latencyMs);
      checkRate("lossRate", options.lossRate);
      for (const [x, y] of [
        [a, b],
        [b, a],
      ] as const) {
        let row = links.get(x);
        if (row === undefined) {
          row = new Map();
          links.set(x, row);
        }
        const link = row.get(y) ?? {};
        if (options.latencyMs !== undefined) link.latencyMs = options.latencyMs;
        if (options.lossRate !== undefined) link.lossRate = options.lossRate;
        if (options.down !== undefined) link.down = options.down;
        row.set(y, link);
      }
    },
    partition(groupA, groupB) {
      partitions.push({ a: new Set(groupA), b: new Set(groupB) });
    },
    heal() {
      partitions.length = 0;
    },
    slow(address, extraLatencyMs) {
      checkDelay("extraLatencyMs", extraLatencyMs);
      if (extraLatencyMs === 0) slowMs.delete(address);
      else slowMs.set(address, extraLatencyMs);
    },
    addresses: () => [...endpoints.keys()],
    stats() {
      const refused =
        refusedByReason["too-large"] + refusedByReason.closed + refusedByReason["unknown-address"];
      const settled = delivered + droppedByLoss + droppedByPartition + droppedNoReceiver;
      return {
        sent,
        delivered,
        droppedByLoss,
        droppedByPartition,
        droppedNoReceiver,
        inFlight: sent - settled,
        refused,
        refusedByReason: { ...refusedByReason },
      };
    },
  };
}

/** The factory for `net`, in the `memory(net)` shape the transport registry expects. */
export function memory(net: MemoryNetwork): TransportFactory {
  return net.memory();
}
