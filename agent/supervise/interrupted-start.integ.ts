/**
 * An agent killed (SIGKILL) after a driver started a child and before the handle was saved, for
 * every built-in strategy: the next agent, opened on the same store, ends what that start left
 * running, starts exactly one new child, and the child's port is served by one process. The killed
 * agent is interrupted-start.fixture.ts, a real Supervisor in its own process. Needs root,
 * bubblewrap and qemu, as CI has.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { chmod, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { eventually } from "../../test/support/eventually.ts";
import { buildTestGuest, testGuestDriver } from "../../test/support/guest/build-guest.ts";
import { tcpListenersOn } from "../../test/support/tcp-listeners.ts";
import { systemClock } from "../clock.ts";
import { type NodeStore, openStore } from "../store/store.ts";
import { childKey, childRecordSchema, type SupervisorEvent } from "./child-record.ts";
import { readProcess } from "./linux-process.ts";
import { markedProcesses } from "./run-sweep.ts";
import { type CreateChildRequest, Supervisor } from "./supervisor.ts";
import { unixUser } from "./unix-user.ts";

const FIXTURES = join(import.meta.dirname, "fixtures");
const HTTP_CHILD = join(FIXTURES, "http-child.mjs");
const wait = { timeoutMs: 90_000, intervalMs: 100 };

let root: string;
let stateDir: string;
let childrenDir: string;
let firstPort: number;
let store: NodeStore | undefined;
let supervisor: Supervisor | undefined;
let agent: ChildProcess | undefined;
let events: SupervisorEvent[];

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "enjin-interrupted-"));
  await chmod(root, 0o711); // a child's user must be able to pass through to its directory
  stateDir = join(root, "state");
  childrenDir = join(root, "children");
  firstPort = 44_000 + Math.floor(Math.random() * 300) * 10;
  events = [];
});

afterEach(async () => {
  if (agent?.exitCode === null && agent.signalCode === null) agent.kill("SIGKILL");
  for (const child of supervisor?.list() ?? []) await supervisor?.remove(child.name).catch(() => undefined);
  await supervisor?.close();
  await store?.close();
  supervisor = undefined;
  store = undefined;
  await rm(root, { recursive: true, force: true });
}, 120_000);

/** Run the fixture agent until it kills itself in the window; the pid its start left running. */
async function interruptedAgent(request: CreateChildRequest): Promise<number> {
  const args = [stateDir, childrenDir, String(firstPort), String(firstPort + 9), JSON.stringify(request)];
  const fixture = spawn(
    process.execPath,
    ["--import", "tsx", join(import.meta.dirname, "interrupted-start.fixture.ts"), ...args],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  agent = fixture;
  let out = "";
  fixture.stdout?.on("data", (chunk: Buffer) => {
    out += chunk.toString();
  });
  const signal = await new Promise((resolve) => fixture.once("exit", (_code, sig) => resolve(sig)));
  expect(signal).toBe("SIGKILL");
  return Number(out.trim());
}

const alive = async (pid: number) => {
  const p = await readProcess(pid);
  return p !== null && p.state !== "Z" && p.state !== "X";
};

/**
 * The whole story for one request: the killed agent's leftover runs and its record says a start was
 * under way with no handle; the next agent sweeps it, starts one child, and the port has one server.
 */
async function checkRecovery(request: CreateChildRequest, healthPath: string): Promise<void> {
  const name = request.spec.name;
  const leftover = await interruptedAgent(request);
  expect(leftover).toBeGreaterThan(1);
  expect(await alive(leftover)).toBe(true);

  store = await openStore(stateDir);
  const left = await store.getJson("children", childKey(name), childRecordSchema);
  expect(left?.handle).toBeNull();
  const runId = left?.launching?.runId as string;
  expect(runId).toMatch(/^[0-9a-f-]{36}$/);
  expect((await markedProcesses(runId)).map((p) => p.pid)).toContain(leftover);

  supervisor = await Supervisor.open({
    store,
    clock: systemClock(),
    childrenDir,
    ports: { firstPort, lastPort: firstPort + 9 },
    onEvent: (e) => events.push(e),
  });
  const swept = events.find((e) => e.kind === "swept");
  expect(swept).toMatchObject({ name, runId });
  expect((swept as { ended: number }).ended).toBeGreaterThanOrEqual(1);
  expect(await alive(leftover)).toBe(false);
  expect(await markedProcesses(runId)).toEqual([]);

  const info = supervisor.get(name);
  expect(info.phase).toBe("running");
  expect(info.pid).not.toBe(leftover);
  const res = await eventually(async () => {
    const r = await fetch(`http://127.0.0.1:${info.port}${healthPath}`, {
      signal: AbortSignal.timeout(5_000),
    });
    expect(r.status).toBe(200);
    return r;
  }, wait);
  await res.text();
  await eventually(() => expect(supervisor?.get(name).health).toBe("healthy"), wait);
  expect(tcpListenersOn(info.port)).toBe(1);
  expect(events.filter((e) => e.kind === "started").map((e) => e.name)).toEqual([name]);
  expect(events.filter((e) => e.kind === "exited" || e.kind === "start-failed")).toEqual([]);
  const saved = await store.getJson("children", childKey(name), childRecordSchema);
  expect(saved?.launching).toBeNull();
}

const httpRequest = (strategy: string, driver?: Record<string, unknown>): CreateChildRequest => ({
  strategy,
  spec: { name: `i-${strategy}`, command: ["node", HTTP_CHILD], ...(driver ? { driver } : {}) },
  health: [{ kind: "http", path: "/health", intervalMs: 200, graceMs: 30_000 }],
});

describe("an agent killed between a child's start and the save of its handle", () => {
  it("proc: the next agent ends the orphan and runs one child", async () => {
    await checkRecovery(httpRequest("proc"), "/health");
  });

  it("unix-user: the next agent ends the orphan and runs one child", async () => {
    await checkRecovery(httpRequest("unix-user"), "/health");
  });

  it("jail: the next agent ends the orphaned jail and runs one child", async () => {
    await checkRecovery(httpRequest("jail", { roBinds: [FIXTURES] }), "/health");
  });

  it("vm: the next agent ends the orphaned qemu and boots one guest", async () => {
    const guest = await buildTestGuest();
    await checkRecovery(
      {
        strategy: "vm",
        spec: {
          name: "i-vm",
          command: ["/init"],
          limits: { memoryBytes: 256 * 1024 * 1024 },
          driver: testGuestDriver(guest),
        },
        health: [{ kind: "http", path: "/", intervalMs: 500, graceMs: 60_000 }],
      },
      "/",
    );
  }, 180_000);

  it("unix-user adopting descendants: the sweep ends the interrupted run's processes, not an earlier run's", async () => {
    const driver = unixUser()({ agentStateDir: stateDir });
    const spec = {
      name: "i-adopt",
      command: ["/bin/sh", "-c", "setsid sleep 600 & exec sleep 600"],
      driver: { adoptDescendants: true },
    };
    const dir = join(root, "i-adopt");
    await mkdir(dir, { mode: 0o700 });
    const request = { spec, port: firstPort, dir, logPath: join(root, "i-adopt.log") };
    const first = await driver.start({ ...request, runId: "run-first" });
    const kept = await eventually(async () => {
      const found = (await markedProcesses("run-first")).filter((p) => p.pid !== first.pid);
      expect(found.length).toBe(1);
      return found[0]!.pid;
    });
    // The first run ends and leaves its descendant running, as a supervising child leaves its own.
    process.kill(first.pid, "SIGKILL");
    await driver.wait(first);
    const second = await driver.start({ ...request, runId: "run-second" });
    try {
      await eventually(async () => expect((await markedProcesses("run-second")).length).toBe(2));
      expect(await driver.sweep({ spec, dir, runId: "run-second" })).toBe(2);
      expect(await alive(second.pid)).toBe(false);
      expect(await markedProcesses("run-second")).toEqual([]);
      expect(await alive(kept)).toBe(true);
    } finally {
      await driver.stop(second, 1_000);
      await driver.cleanup(second);
    }
    expect(await alive(kept)).toBe(false);
  });
});
