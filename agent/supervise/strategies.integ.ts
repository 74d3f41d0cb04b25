/**
 * Every built-in strategy through the Supervisor, as the daemon runs them: `create` of an HTTP child
 * with an http health check under `proc`, `unix-user`, `jail` and `vm` (a real qemu guest from
 * test/support/guest), each answering on its allocated PORT, its output in `<child>/log/current`
 * beside (never inside) its own directory, and `remove` taking everything away again (user, port,
 * files). Needs root, bubblewrap and qemu, as CI has.
 */
import { execFile } from "node:child_process";
import { chmod, mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import * as v from "valibot";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { seededRng } from "../../rings/index.ts";
import { eventually } from "../../test/support/eventually.ts";
import { buildTestGuest, TEST_GUEST_PAGE } from "../../test/support/guest/build-guest.ts";
import { systemClock } from "../clock.ts";
import { type NodeStore, openStore } from "../store/store.ts";
import type { ChildGiveUpEvent } from "./child-record.ts";
import { Supervisor } from "./supervisor.ts";

const run = promisify(execFile);
const FIXTURES = join(import.meta.dirname, "fixtures");
const HTTP_CHILD = join(FIXTURES, "http-child.mjs");
const wait = { timeoutMs: 90_000, intervalMs: 100 };

let root: string;
let store: NodeStore;
let supervisor: Supervisor;
const gaveUp: ChildGiveUpEvent[] = [];

async function get(port: number, path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(5_000) });
  return { status: res.status, body: await res.text() };
}

async function userExists(name: string): Promise<boolean> {
  return run("getent", ["passwd", name]).then(
    () => true,
    () => false,
  );
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "enjin-strategies-"));
  await chmod(root, 0o711); // a child's user must be able to pass through to its directory
  store = await openStore(join(root, "state"));
  const firstPort = 43_000 + Math.floor(Math.random() * 300) * 10;
  supervisor = await Supervisor.open({
    store,
    clock: systemClock(),
    rng: seededRng(11),
    childrenDir: join(root, "children"),
    ports: { firstPort, lastPort: firstPort + 9 },
    stopTimeoutMs: 5_000,
    onGiveUp: (e) => gaveUp.push(e),
  });
});

afterAll(async () => {
  for (const child of supervisor?.list() ?? []) await supervisor.remove(child.name).catch(() => undefined);
  await supervisor?.close();
  await store?.close();
  await rm(root, { recursive: true, force: true });
}, 120_000);

const cases = [
  { strategy: "proc", user: null, driver: undefined },
  { strategy: "unix-user", user: "enjin-s-unix-user", driver: undefined },
  { strategy: "jail", user: "enjail-s-jail", driver: { roBinds: [FIXTURES] } },
] as const;

describe("each strategy through Supervisor.create", () => {
  for (const c of cases) {
    it(`${c.strategy}: serves on its PORT, logs beside its directory, and remove takes everything away`, async () => {
      const name = `s-${c.strategy}`;
      const info = await supervisor.create({
        strategy: c.strategy,
        spec: {
          name,
          command: ["node", HTTP_CHILD],
          ...(c.driver === undefined ? {} : { driver: c.driver }),
        },
        health: [{ kind: "http", path: "/health", intervalMs: 200, graceMs: 30_000 }],
      });
      expect(info.dir).toBe(join(root, "children", name, "dir"));
      const answer = await eventually(() => get(info.port, "/health"), wait);
      expect(answer.status).toBe(200);
      await eventually(() => expect(supervisor.get(name).health).toBe("healthy"), wait);
      await eventually(
        async () => expect(await supervisor.logs(name)).toMatch(`listening ${info.port} `),
        wait,
      );
      // The log is root's, outside the child's directory; the child's directory is its user's.
      const log = await stat(join(root, "children", name, "log", "current"));
      expect({ uid: log.uid, mode: log.mode & 0o777 }).toEqual({ uid: 0, mode: 0o600 });
      const dir = await stat(info.dir);
      expect(dir.mode & 0o777).toBe(0o700);
      if (c.user !== null) {
        expect(await userExists(c.user)).toBe(true);
        expect(dir.uid).not.toBe(0);
      }
      await supervisor.remove(name);
      await expect(stat(join(root, "children", name))).rejects.toThrow(/ENOENT/);
      await expect(get(info.port, "/health")).rejects.toThrow();
      if (c.user !== null) expect(await userExists(c.user)).toBe(false);
      expect(await store.listJson("children", "", v.unknown())).toEqual([]);
    });
  }

  it("vm: a qemu guest answers on the forwarded PORT, and remove powers it off and frees the port", async () => {
    const guest = await buildTestGuest();
    const info = await supervisor.create({
      strategy: "vm",
      spec: {
        name: "s-vm",
        command: ["/init"],
        limits: { memoryBytes: 256 * 1024 * 1024 },
        driver: {
          kernel: guest.kernel,
          initrd: guest.initrd,
          guestPort: guest.guestPort,
          append: [...guest.append],
          ...(guest.firmware === undefined ? {} : { firmware: guest.firmware }),
        },
      },
      health: [{ kind: "http", path: "/", intervalMs: 500, graceMs: 60_000 }],
    });
    const page = await eventually(() => get(info.port, "/"), wait);
    expect(page).toEqual({ status: 200, body: TEST_GUEST_PAGE });
    await eventually(() => expect(supervisor.get("s-vm").health).toBe("healthy"), wait);
    expect(await readFile(join(root, "children", "s-vm", "log", "current"), "utf8")).not.toBe("");
    const pid = supervisor.get("s-vm").pid!;
    await supervisor.remove("s-vm");
    expect(() => process.kill(pid, 0)).toThrow();
    await expect(get(info.port, "/")).rejects.toThrow();
    expect(gaveUp).toEqual([]);
  }, 180_000);
});
