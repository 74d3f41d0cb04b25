import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as v from "valibot";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type NodeStore, openStore } from "../store/store.ts";
import { NameTakenError, PortRangeExhaustedError, SupervisorConfigError } from "./errors.ts";
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

function listenAnywhere(host = "::"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen({ port: 0, host }, () => {
      servers.push(server);
      resolve((server.address() as { port: number }).port);
    });
  });
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
