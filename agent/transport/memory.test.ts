import { describe, expect, it } from "vitest";
import { seededRng } from "../../rings/rng.ts";
import { transportCompliance } from "../../test/compliance/transport-compliance.ts";
import { runUntilTrue } from "../../test/support/eventually.ts";
import { systemClock } from "../clock.ts";
import { VirtualClock } from "../virtual-clock.ts";
import {
  AddressInUseError,
  InvalidNetworkOptionError,
  type MemoryNetworkOptions,
  memoryNetwork,
} from "./memory.ts";
import type { Transport } from "./transport.ts";

transportCompliance("memory", async () => {
  const net = memoryNetwork({ clock: systemClock(), rng: seededRng(1), maxFrameBytes: 64 * 1024 });
  const factory = net.memory();
  return { make: () => factory({}), teardown: async () => {} };
});

/** A network on a fresh VirtualClock, plus endpoints that log (time, from, first byte). */
function sim(options: Partial<MemoryNetworkOptions> = {}) {
  const clock = new VirtualClock();
  const net = memoryNetwork({ clock, rng: seededRng(42), ...options });
  const log: Array<{ atMs: number; to: string; from: string; n: number }> = [];
  const node = async (listen: string): Promise<Transport> => {
    const t = await net.memory()({ listen });
    t.onFrame((from, frame) => log.push({ atMs: clock.now(), to: listen, from, n: frame[0] ?? -1 }));
    return t;
  };
  return { clock, net, log, node };
}

describe("memory network", () => {
  it("assigns an address when none is asked and refuses a duplicate with AddressInUseError", async () => {
    const { net } = sim();
    const a = await net.memory()({});
    const b = await net.memory()({});
    expect(a.address).not.toBe(b.address);
    await net.memory()({ listen: "n1" });
    await expect(net.memory()({ listen: "n1" })).rejects.toBeInstanceOf(AddressInUseError);
    await expect(net.memory()({ listen: a.address })).rejects.toThrow(AddressInUseError);
    expect(net.addresses().sort()).toEqual([a.address, b.address, "n1"].sort());
  });

  it("frees an address on close so a restarted node can take it again", async () => {
    const { node } = sim();
    const first = await node("n1");
    await first.close();
    await expect(node("n1")).resolves.toBeDefined();
  });

  it("rejects out-of-range options with InvalidNetworkOptionError", () => {
    const clock = new VirtualClock();
    const rng = seededRng(1);
    expect(() => memoryNetwork({ clock, rng, lossRate: 1.5 })).toThrow(InvalidNetworkOptionError);
    expect(() => memoryNetwork({ clock, rng, latencyMs: -1 })).toThrow(InvalidNetworkOptionError);
    const net = memoryNetwork({ clock, rng });
    expect(() => net.setLink("a", "b", { lossRate: -0.1 })).toThrow(InvalidNetworkOptionError);
  });

  it("honours latency exactly and keeps order on an equal-latency link", async () => {
    const { clock, log, node } = sim({ latencyMs: 25 });
    const a = await node("a");
    await node("b");
    clock.advance(100);
    a.send("b", Uint8Array.of(1));
    clock.advance(3);
    a.send("b", Uint8Array.of(2));
    clock.runUntil(127);
    expect(log).toEqual([{ atMs: 125, to: "b", from: "a", n: 1 }]);
    clock.runUntilIdle();
    expect(log.map((e) => [e.atMs, e.n])).toEqual([
      [125, 1],
      [128, 2],
    ]);
  });

  it("adds jitter within [latency, latency + jitter)", async () => {
    const { clock, log, node } = sim({ latencyMs: 10, jitterMs: 5 });
    const a = await node("a");
    await node("b");
    for (let i = 0; i < 200; i++) a.send("b", Uint8Array.of(i));
    clock.runUntilIdle();
    expect(log).toHaveLength(200);
    for (const e of log) {
      expect(e.atMs).toBeGreaterThanOrEqual(10);
      expect(e.atMs).toBeLessThan(15);
    }
  });

  it("loses close to lossRate of 10,000 frames (within 5 binomial standard deviations)", async () => {
    const lossRate = 0.1;
    const n = 10_000;
    const { clock, net, log, node } = sim({ lossRate, latencyMs: 1 });
    const a = await node("a");
    await node("b");
    for (let i = 0; i < n; i++) expect(a.send("b", Uint8Array.of(i & 0xff))).toBeNull();
    clock.runUntilIdle();
    const stats = net.stats();
    const mean = n * lossRate;
    const sd = Math.sqrt(n * lossRate * (1 - lossRate));
    expect(Math.abs(stats.droppedByLoss - mean)).toBeLessThanOrEqual(5 * sd);
    expect(stats.sent).toBe(n);
    expect(stats.delivered + stats.droppedByLoss).toBe(n);
    expect(log).toHaveLength(stats.delivered);
    expect(stats.inFlight).toBe(0);
  });

  it("replays the same losses from the same seed", async () => {
    const run = async () => {
      const { clock, log, node } = sim({ lossRate: 0.3, jitterMs: 4 });
      const a = await node("a");
      await node("b");
      for (let i = 0; i < 500; i++) a.send("b", Uint8Array.of(i & 0xff));
      clock.runUntilIdle();
      return log;
    };
    expect(await run()).toEqual(await run());
  });

  it("partitions drop both ways, leave other links alone, and heal restores", async () => {
    const { clock, net, log, node } = sim({ latencyMs: 5 });
    const a = await node("a");
    const b = await node("b");
    const c = await node("c");
    net.partition(["a"], ["b", "c"]);
    expect(a.send("b", Uint8Array.of(1))).toBeNull(); // accepted, silently dropped
    expect(b.send("a", Uint8Array.of(2))).toBeNull();
    expect(c.send("a", Uint8Array.of(3))).toBeNull();
    expect(b.send("c", Uint8Array.of(4))).toBeNull(); // same side: fine
    clock.runUntilIdle();
    expect(log.map((e) => e.n)).toEqual([4]);
    expect(net.stats().droppedByPartition).toBe(3);
    net.heal();
    a.send("b", Uint8Array.of(5));
    b.send("a", Uint8Array.of(6));
    clock.runUntilIdle();
    expect(log.map((e) => e.n)).toEqual([4, 5, 6]);
  });

  it("slow() delays every frame to or from the slowed node, and 0 restores it", async () => {
    const { clock, net, log, node } = sim({ latencyMs: 10 });
    const a = await node("a");
    const b = await node("b");
    await node("c");
    net.slow("b", 40);
    a.send("b", Uint8Array.of(1));
    b.send("a", Uint8Array.of(2));
    a.send("c", Uint8Array.of(3));
    clock.runUntilIdle();
    expect(log.map((e) => [e.n, e.atMs])).toEqual([
      [3, 10],
      [1, 50],
      [2, 50],
    ]);
    net.slow("b", 0);
    const t0 = clock.now();
    a.send("b", Uint8Array.of(4));
    expect(runUntilTrue(clock, () => log.length === 4, 1_000)).toBe(10);
    expect(log[3]!.atMs - t0).toBe(10);
  });

  it("per-link down drops both ways and up restores; per-link latency and loss override the network's", async () => {
    const { clock, net, log, node } = sim({ latencyMs: 10 });
    const a = await node("a");
    const b = await node("b");
    await node("c");
    net.setLink("a", "b", { down: true });
    a.send("b", Uint8Array.of(1));
    b.send("a", Uint8Array.of(2));
    a.send("c", Uint8Array.of(3));
    clock.runUntilIdle();
    expect(log.map((e) => e.n)).toEqual([3]);
    net.setLink("b", "a", { down: false, latencyMs: 2 });
    const t0 = clock.now();
    a.send("b", Uint8Array.of(4));
    clock.runUntilIdle();
    expect(log.at(-1)).toEqual({ atMs: t0 + 2, to: "b", from: "a", n: 4 });
    net.setLink("a", "c", { lossRate: 1 });
    a.send("c", Uint8Array.of(5));
    clock.runUntilIdle();
    expect(log.map((e) => e.n)).toEqual([3, 4]);
    expect(net.stats().droppedByLoss).toBe(1);
  });

  it("counts refusals by reason and frames that find no receiver", async () => {
    const { clock, net, node } = sim({ latencyMs: 5, maxFrameBytes: 8 });
    const a = await node("a");
    const b = await node("b");
    expect(a.send("b", new Uint8Array(9))).toBe("too-large");
    expect(a.send("nobody", Uint8Array.of(1))).toBe("unknown-address");
    expect(a.send("b", Uint8Array.of(1))).toBeNull();
    await b.close();
    expect(b.send("a", Uint8Array.of(1))).toBe("closed");
    expect(a.send("b", Uint8Array.of(1))).toBe("unknown-address");
    expect(net.stats().inFlight).toBe(1);
    clock.runUntilIdle();
    const stats = net.stats();
    expect(stats.refusedByReason).toEqual({ "too-large": 1, closed: 1, "unknown-address": 2 });
    expect(stats.refused).toBe(4);
    expect(stats.sent).toBe(1);
    expect(stats.droppedNoReceiver).toBe(1);
    expect(stats.delivered).toBe(0);
    expect(stats.inFlight).toBe(0);
  });

  it("carries 1,000 nodes gossiping on a virtual clock", async () => {
    const clock = new VirtualClock();
    const rng = seededRng(9);
    const net = memoryNetwork({ clock, rng, latencyMs: 3, jitterMs: 4, lossRate: 0.01 });
    const nodes: Transport[] = [];
    let received = 0;
    for (let i = 0; i < 1_000; i++) {
      const t = await net.memory()({});
      t.onFrame(() => received++);
      nodes.push(t);
    }
    const frame = new Uint8Array(64);
    for (let round = 0; round < 20; round++) {
      for (const t of nodes) {
        for (let k = 0; k < 3; k++) t.send(nodes[Math.floor(rng() * nodes.length)]!.address, frame);
      }
      clock.advance(100);
    }
    const stats = net.stats();
    expect(stats.sent).toBe(60_000);
    expect(received).toBe(stats.delivered);
    expect(stats.delivered + stats.droppedByLoss).toBe(60_000);
  });
});
