import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as v from "valibot";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type NodeStore, openStore } from "../store/store.ts";
import {
  InvalidSpecError,
  NameTakenError,
  PortRangeExhaustedError,
  SupervisorConfigError,
} from "./errors.ts";
import { checkPortRange, hostPortFree, PortAllocator, type PortProbe, portKey } from "./ports.ts";

const T0 = 1_800_000_000_000;
/** Treats every port as free: the tests that are about bookkeeping must not depend on the host. */
const allFree: PortProbe = async () => true;
const RANGE = { firstPort: 40_100, lastPort: 40_119 };

let dir: string;
let store: NodeStore;
const servers: Server[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "enjin-ports-"));
  store = await openStore(dir);
});
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
  if (store.db.status === "open") await store.close();
  await rm(dir, { recursive: true, force: true });
});

function listenAnywhere(host = "::", port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen({ port, host }, () => {
      servers.push(server);
      resolve((server.address() as { port: number }).port);
    });
  });
}

/**
 * Five ports, first..first+4, below the kernel's ephemeral range (so other tests' connections do not
 * land there) and in a stretch no integration test listens in (25000..25999: mesh.integ.ts ends
 * below it), with this test listening on first + 1 and the other four free on the host.
 */
async function rangeWithListenerSecond(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const first = 25_000 + 5 * Math.floor(Math.random() * 199);
    const others = [first, first + 2, first + 3, first + 4];
    if (!(await Promise.all(others.map(hostPortFree))).every(Boolean)) continue;
    if ((await listenAnywhere("::", first + 1).catch(() => 0)) === first + 1) return first;
  }
  throw new Error("found no five free ports in 25000..25999 to test with");
}

describe("PortAllocator", () => {
  it("hands out distinct ports and never the same one again after a restart", async () => {
    const ports = await PortAllocator.open(store, RANGE, { isPortFree: allFree });
    const a = await ports.allocate("a", T0);
    const b = await ports.allocate("b", T0);
    expect(a).not.toBe(b);
    expect([a, b].every((p) => p >= RANGE.firstPort && p <= RANGE.lastPort)).toBe(true);
    await store.close();

    store = await openStore(dir);
    const again = await PortAllocator.open(store, RANGE, { isPortFree: allFree });
    expect(again.portOf("a")).toBe(a);
    expect(again.portOf("b")).toBe(b);
    const c = await again.allocate("c", T0);
    expect([a, b]).not.toContain(c);
    expect(
      await store.getJson("children", portKey(c), v.object({ child: v.string(), allocatedMs: v.number() })),
    ).toEqual({ child: "c", allocatedMs: T0 });
  });

  it("concurrent allocations each get their own port, and the one too many is refused cleanly", async () => {
    const ports = await PortAllocator.open(store, RANGE, { isPortFree: allFree });
    const names = Array.from({ length: 20 }, (_, i) => `child-${i}`);
    const got = await Promise.all(names.map((n) => ports.allocate(n, T0)));
    expect(new Set(got).size).toBe(20);
    await expect(ports.allocate("one-too-many", T0)).rejects.toThrow(PortRangeExhaustedError);
    await expect(ports.allocate("one-too-many", T0)).rejects.toThrow(/20 allocated to children/);
    expect(ports.portOf("one-too-many")).toBeUndefined();
    const stored = await store.listJson("children", "port:", v.object({ child: v.string() }));
    expect(stored.length).toBe(20);
  });

  it("writes the caller's operations in the same batch, and nothing at all if the batch is refused", async () => {
    const ports = await PortAllocator.open(store, RANGE, { isPortFree: allFree });
    const port = await ports.allocate("web", T0, (p) => [
      { type: "put", sublevel: "children", key: "child:web", value: { port: p } },
    ]);
    expect(await store.getJson("children", "child:web", v.object({ port: v.number() }))).toEqual({ port });

    // A key with a space is refused by the store before anything is written.
    await expect(
      ports.allocate("bad", T0, () => [{ type: "put", sublevel: "children", key: "bad key", value: 1 }]),
    ).rejects.toThrow(/printable ASCII/);
    expect(ports.portOf("bad")).toBeUndefined();
    expect((await store.listJson("children", "port:", v.unknown())).length).toBe(1);
  });

  it("release frees the port with the caller's deletes, and the port can be handed out again", async () => {
    const ports = await PortAllocator.open(
      store,
      { firstPort: 40_200, lastPort: 40_200 },
      { isPortFree: allFree },
    );
    const port = await ports.allocate("only", T0, () => [
      { type: "put", sublevel: "children", key: "child:only", value: 1 },
    ]);
    await expect(ports.allocate("other", T0)).rejects.toThrow(PortRangeExhaustedError);
    expect(await ports.release("only", [{ type: "del", sublevel: "children", key: "child:only" }])).toBe(
      port,
    );
    expect(await store.getJson("children", "child:only", v.number())).toBeUndefined();
    expect(await ports.release("only")).toBeUndefined();
    expect(await ports.allocate("other", T0)).toBe(port);
  });

  it("refuses a second port for the same child", async () => {
    const ports = await PortAllocator.open(store, RANGE, { isPortFree: allFree });
    await ports.allocate("web", T0);
    await expect(ports.allocate("web", T0)).rejects.toThrow(NameTakenError);
  });

  it("skips a port something else on the host listens on (real probe)", async () => {
    const busy = await listenAnywhere();
    expect(await hostPortFree(busy)).toBe(false);
    const ports = await PortAllocator.open(store, { firstPort: busy, lastPort: busy }, {});
    await expect(ports.allocate("web", T0)).rejects.toThrow(/1 in use by other programs/);
    // Nothing was recorded for the busy port: once it is free it can be allocated.
    await new Promise((r) => servers.pop()!.close(r));
    expect(await ports.allocate("web", T0)).toBe(busy);
  });

  it("the probe also sees a listener on one IPv4 address only", async () => {
    const busy = await listenAnywhere("127.0.0.1");
    expect(await hostPortFree(busy)).toBe(false);
  });

  it("refuses an unusable range with SupervisorConfigError", () => {
    expect(() => checkPortRange({ firstPort: 0, lastPort: 10 })).toThrow(SupervisorConfigError);
    expect(() => checkPortRange({ firstPort: 10, lastPort: 70_000 })).toThrow(/lastPort must be a port/);
    expect(() => checkPortRange({ firstPort: 20, lastPort: 10 })).toThrow(/range is empty/);
    expect(() => checkPortRange({ firstPort: 1.5, lastPort: 10 })).toThrow(SupervisorConfigError);
  });
});

/** The ports stored for `child`, as keys of the store, sorted. */
async function storedPortsOf(child: string): Promise<number[]> {
  const rows = await store.listJson("children", "port:", v.object({ child: v.string() }));
  return rows
    .filter(([, a]) => a.child === child)
    .map(([key]) => Number(key.slice("port:".length)))
    .sort((a, b) => a - b);
}

describe("PortAllocator blocks", () => {
  it("allocates consecutive ports, each stored, and never overlaps another child's", async () => {
    const ports = await PortAllocator.open(store, RANGE, { isPortFree: allFree });
    const one = await ports.allocate("one", T0);
    const block = await ports.allocateBlock("ringd", 5, T0);
    const two = await ports.allocate("two", T0);
    const ringdPorts = [block, block + 1, block + 2, block + 3, block + 4];
    expect(ports.portsOf("ringd")).toEqual(ringdPorts);
    expect(ports.portOf("ringd")).toBe(block);
    expect(await storedPortsOf("ringd")).toEqual(ringdPorts);
    expect(ringdPorts).not.toContain(one);
    expect(ringdPorts).not.toContain(two);
    expect(block + 4).toBeLessThanOrEqual(RANGE.lastPort);
    await expect(ports.allocateBlock("ringd", 5, T0)).rejects.toThrow(NameTakenError);
    await expect(ports.allocateBlock("ringd", 5, T0)).rejects.toThrow(`${block}-${block + 4}`);
  });

  it("a free single port does not satisfy a block: fragmentation is refused by name of the block size", async () => {
    // 40100..40109: every other port allocated leaves five free ports, none two in a row.
    const ports = await PortAllocator.open(
      store,
      { firstPort: 40_100, lastPort: 40_109 },
      { isPortFree: allFree },
    );
    for (let i = 0; i < 10; i++) await ports.allocate(`c${i}`, T0);
    for (let i = 1; i < 10; i += 2) await ports.release(`c${i}`);
    const err = await ports.allocateBlock("ringd", 5, T0).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PortRangeExhaustedError);
    expect((err as Error).message).toMatch(/no block of 5 consecutive free ports in 40100\.\.40109/);
    expect((err as Error).message).toMatch(/5 allocated to children/);
    expect(ports.portsOf("ringd")).toEqual([]);
    expect(await storedPortsOf("ringd")).toEqual([]);
    // A single port still fits, and once c2..c6 are gone a block of 5 fits exactly there.
    expect(await ports.allocate("single", T0)).toBeGreaterThanOrEqual(40_100);
    await ports.release("single");
    for (const c of ["c2", "c4", "c6"]) await ports.release(c);
    expect(await ports.allocateBlock("ringd", 5, T0)).toBe(40_102);
  });

  it("a block that cannot fit in the range at all is refused with the range's size", async () => {
    const ports = await PortAllocator.open(
      store,
      { firstPort: 40_100, lastPort: 40_103 },
      { isPortFree: allFree },
    );
    await expect(ports.allocateBlock("ringd", 5, T0)).rejects.toThrow(
      /block of 5 consecutive ports does not fit in the node's range 40100\.\.40103 \(4 ports\)/,
    );
    await expect(ports.allocateBlock("ringd", 0, T0)).rejects.toThrow(InvalidSpecError);
    await expect(ports.allocateBlock("ringd", 2.5, T0)).rejects.toThrow(/1\.\.64 consecutive ports/);
  });

  it("release frees the whole block with the caller's deletes, and the ports are handed out again", async () => {
    const range = { firstPort: 40_100, lastPort: 40_104 };
    const ports = await PortAllocator.open(store, range, { isPortFree: allFree });
    const block = await ports.allocateBlock("ringd", 5, T0, (first) => [
      { type: "put", sublevel: "children", key: "child:ringd", value: { port: first } },
    ]);
    expect(await store.getJson("children", "child:ringd", v.object({ port: v.number() }))).toEqual({
      port: block,
    });
    await expect(ports.allocate("app", T0)).rejects.toThrow(PortRangeExhaustedError);
    expect(await ports.release("ringd", [{ type: "del", sublevel: "children", key: "child:ringd" }])).toBe(
      40_100,
    );
    expect(await storedPortsOf("ringd")).toEqual([]);
    expect(await store.getJson("children", "child:ringd", v.unknown())).toBeUndefined();
    expect(ports.allocations().size).toBe(0);
    expect(await ports.allocateBlock("again", 5, T0)).toBe(40_100);
  });

  it("a block is recovered whole after a restart, and not handed out again", async () => {
    const range = { firstPort: 40_100, lastPort: 40_111 };
    const ports = await PortAllocator.open(store, range, { isPortFree: allFree });
    const block = await ports.allocateBlock("ringd", 5, T0);
    await store.close();

    store = await openStore(dir);
    const again = await PortAllocator.open(store, range, { isPortFree: allFree });
    expect(again.portsOf("ringd")).toEqual([block, block + 1, block + 2, block + 3, block + 4]);
    const others = await Promise.all(
      Array.from({ length: range.lastPort - range.firstPort + 1 - 5 }, (_, i) =>
        again.allocate(`app${i}`, T0),
      ),
    );
    for (const p of others) expect(p < block || p > block + 4).toBe(true);
    await expect(again.allocate("one-too-many", T0)).rejects.toThrow(PortRangeExhaustedError);
    expect(await again.release("ringd")).toBe(block);
    expect(again.portsOf("ringd")).toEqual([]);
  });

  it("skips a block that holds a port something else on the host listens on (real probe)", async () => {
    const first = await rangeWithListenerSecond();
    const ports = await PortAllocator.open(store, { firstPort: first, lastPort: first + 4 }, {});
    // The only block of 3 that avoids the listener on first + 1 starts just after it.
    expect(await ports.allocateBlock("ringd", 3, T0)).toBe(first + 2);
    await expect(ports.allocateBlock("other", 2, T0)).rejects.toThrow(/1 in use by other programs/);
    expect(ports.portsOf("other")).toEqual([]);
  });
});
