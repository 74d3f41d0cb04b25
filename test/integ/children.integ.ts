/**
 * Supervision through the mesh, with real processes: a ring-0 seed and one joined ring-1 node, each a
 * `ringd` over ZeroMQ with its LevelDB on disk, driven by the real `ringctl` at the seed. Children are
 * created on the ring-1 node by signed commands (`proc` and `unix-user`, the HTTP fixture with an
 * http health check): each answers on its allocated PORT and shows in `child list`; kill -9 gets it
 * restarted on the same port; `child logs` (and `--follow`) show its output; a crash-looping child's
 * give-up reaches the seed as a signed event that `child events` verifies; a ringd restart recovers
 * the running child (same pid, one process); bad specs are refused by name, changing nothing; a
 * viewer key's child list is answered, while its create, remove and exec are refused and counted by
 * the node it is handed to, and never passed on; `child remove` frees the port and removes the user.
 *
 * The unix-user child is removed before ringd is restarted: while one runs, a SIGTERMed ringd does
 * not exit (unix-user-launch.ts keeps the shim's ChildProcess and its fd-3 pipe referenced, where
 * proc and jail unref theirs), so the restart is shown with proc children.
 */
import type { ChildProcess } from "node:child_process";
import { execFile } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { chmod, mkdtemp, rm, rmdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readKeyFile } from "../../agent/store/key-file.ts";
import { fingerprint, keyHex } from "../../protocol/index.ts";
import { type Ran, RingdProcesses } from "../../scripts/ringd-process.ts";
import { eventually } from "../support/eventually.ts";

const HTTP_CHILD = join(import.meta.dirname, "..", "..", "agent", "supervise", "fixtures", "http-child.mjs");
// Below the ephemeral ports (32768+), in a stretch no other integration file uses (mesh.integ.ts).
const BASE_PORT = 26_000 + Math.floor(Math.random() * 1_700);
/** The ring-1 node's child ports: three, so that a fourth child finds none. */
const CHILD_PORTS = [BASE_PORT + 100, BASE_PORT + 101, BASE_PORT + 102];
const wait = { timeoutMs: 60_000, intervalMs: 250 };
const procs = new RingdProcesses();
const daemons = new Map<string, ChildProcess>();
let dir: string;
/** The ring-1 node, as --node takes it: a part of its fingerprint. */
let n1: string;

function start(name: string, extra: string[] = []): ChildProcess {
  const child = procs.spawn("ringd", [
    "start",
    "--data-dir",
    join(dir, name),
    "--log-level",
    "warn",
    ...extra,
  ]);
  daemons.set(name, child);
  return child;
}
const startN1 = () => start("n1", ["--child-ports", `${CHILD_PORTS[0]}-${CHILD_PORTS[2]}`]);

/** ringctl at the seed (or at `node`). */
const ctl = (args: string[], node = "seed"): Promise<Ran> => procs.ctl(args, join(dir, node));

type Child = {
  name: string;
  strategy: string;
  phase: string;
  pid: number | null;
  port: number;
  restarts: number;
};
async function children(): Promise<Child[]> {
  const r = await ctl(["child", "list", "--node", n1, "--json", "--timeout", "5s"]);
  if (r.code !== 0) throw new Error(`child list: ${r.code} ${r.stdout} ${r.stderr}`);
  const out = JSON.parse(r.stdout) as { results: { children: Child[] }[] };
  expect(out.results).toHaveLength(1);
  return out.results[0]!.children;
}
const child = async (name: string) => (await children()).find((c) => c.name === name);

async function health(port: number): Promise<{ status: number; pid: number }> {
  const res = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(5_000) });
  return { status: res.status, pid: Number((await res.text()).trim().split(" ")[1]) };
}

/** Live processes whose working directory is `cwd` (or, with `under`, lies below it). */
function processesIn(cwd: string, under = false): number[] {
  return readdirSync("/proc")
    .filter((e) => {
      if (!/^\d+$/.test(e)) return false;
      try {
        const stat = readFileSync(`/proc/${e}/stat`, "utf8");
        const at = readlinkSync(`/proc/${e}/cwd`).replace(/ \(deleted\)$/, "");
        const here = under ? at.startsWith(`${cwd}/`) : at === cwd;
        return here && !stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
      } catch {
        return false;
      }
    })
    .map(Number);
}
const processesUnder = (dir: string) => processesIn(dir, true);

async function userExists(name: string): Promise<boolean> {
  return promisify(execFile)("getent", ["passwd", name]).then(
    () => true,
    () => false,
  );
}

const create = (name: string, strategy: string, command: string[], extra: string[] = []) =>
  ctl(["child", "create", name, "--node", n1, "--strategy", strategy, "--json", ...extra, "--", ...command]);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "enjin-children-"));
  await chmod(dir, 0o711); // a unix-user child passes through it to <dir>/n1-children/<name>/dir
  const init = await procs.run("ringd", [
    "init",
    "--data-dir",
    join(dir, "seed"),
    "--listen",
    `127.0.0.1:${BASE_PORT}`,
  ]);
  expect(init.code, init.stderr).toBe(0);
  await procs.waitReady(
    start("seed", ["--child-ports", `${BASE_PORT + 200}-${BASE_PORT + 209}`]),
    join(dir, "seed"),
    wait,
  );
  const token = await ctl(["token", "create", "--ring", "1", "--ttl", "10m"]);
  expect(token.code, token.stderr).toBe(0);
  const joined = await procs.run("ringd", [
    "join",
    token.stdout.trim(),
    "--data-dir",
    join(dir, "n1"),
    "--listen",
    `127.0.0.1:${BASE_PORT + 10}`,
    "--name",
    "n1",
  ]);
  expect(joined.code, joined.stderr).toBe(0);
  await procs.waitReady(startN1(), join(dir, "n1"), wait);
  n1 = fingerprint((await readKeyFile(join(dir, "n1", "node.key")))!.publicKey).slice(8, 28);
  await eventually(async () => {
    const nodes = JSON.parse((await ctl(["nodes", "--json"])).stdout).nodes as { state: string }[];
    expect(nodes.filter((n) => n.state === "alive")).toHaveLength(2);
  }, wait);
}, 180_000);

afterAll(async () => {
  // Children outlive ringd by design: remove them through ringd first, then stop the daemons.
  for (const name of ["web", "webu", "crashy", "idle"])
    await ctl(["child", "remove", name, "--node", n1, "--timeout", "5s"]).catch(() => undefined);
  await procs.stopAll();
  // What a failed test above left behind: its processes, and the user and cgroups of "webu".
  for (const pid of processesUnder(join(dir, "n1-children"))) process.kill(pid, "SIGKILL");
  const account = await promisify(execFile)("getent", ["passwd", "enjin-webu"]).catch(() => null);
  if (account?.stdout.includes("enjin child webu")) {
    await promisify(execFile)("userdel", ["enjin-webu"]).catch(() => undefined);
    for (const c of ["", "pids/", "memory/", "cpu/", "cpu,cpuacct/"])
      await rmdir(`/sys/fs/cgroup/${c}enjin/enjin-webu`).catch(() => undefined);
  }
  await rm(dir, { recursive: true, force: true });
}, 120_000);

describe("children of a ring-1 node, commanded through the mesh", () => {
  let web: Child;

  it("creates a proc child that answers on its allocated PORT and shows in child list", async () => {
    const r = await create("web", "proc", ["node", HTTP_CHILD], ["--health", "http:/health"]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const made = JSON.parse(r.stdout).results[0];
    expect(made).toMatchObject({ exitCode: 0, child: { name: "web", strategy: "proc", phase: "running" } });
    expect(CHILD_PORTS).toContain(made.child.port);
    const answer = await eventually(() => health(made.child.port), wait);
    expect(answer).toEqual({ status: 200, pid: made.child.pid });
    web = (await child("web"))!;
    expect(web).toMatchObject({ name: "web", port: made.child.port, pid: made.child.pid, restarts: 0 });
    const text = await ctl(["child", "list", "--node", n1]);
    expect(text.stdout).toMatch(/NAME\s+STRATEGY\s+STATE\s+PID\s+PORT\s+RESTARTS/);
    expect(text.stdout).toMatch(new RegExp(`web\\s+proc\\s+running\\s+${web.pid}\\s+${web.port}\\s+0`));
  });

  it("kill -9 of the child: restarted with a new pid on the same port", async () => {
    process.kill(web.pid!, "SIGKILL");
    const again = await eventually(async () => {
      const now = await child("web");
      expect(now?.pid).not.toBe(web.pid);
      expect(now?.phase).toBe("running");
      return now!;
    }, wait);
    expect(again).toMatchObject({ port: web.port, restarts: 1 });
    expect(await eventually(() => health(web.port), wait)).toEqual({ status: 200, pid: again.pid });
    web = again;
  });

  it("child logs shows its output, and --follow what it writes next", async () => {
    const logs = await ctl(["child", "logs", "web", "--node", n1]);
    expect(logs.code, logs.stderr).toBe(0);
    expect(logs.stdout).toContain(`listening ${web.port} ${web.pid}\n`);
    const follower = procs.spawn(
      "ringctl",
      [
        "child",
        "logs",
        "web",
        "--node",
        n1,
        "--follow",
        "--interval",
        "200ms",
        "--lines",
        "1",
        "--data-dir",
        join(dir, "seed"),
      ],
      { stdout: "pipe" },
    );
    let out = "";
    follower.stdout!.on("data", (b: Buffer) => {
      out += b.toString();
    });
    await eventually(() => expect(out).toContain(`listening ${web.port} ${web.pid}`), wait);
    expect((await ctl(["child", "restart", "web", "--node", n1])).code).toBe(0);
    web = (await child("web"))!;
    await eventually(() => expect(out).toContain(`listening ${web.port} ${web.pid}\n`), wait);
    const exited = new Promise<number | null>((resolve) => follower.once("exit", resolve));
    follower.kill("SIGINT");
    expect(await exited).toBe(130);
  });

  it("a unix-user child runs as its own user; child remove frees its port and removes the user", async () => {
    const r = await create(
      "webu",
      "unix-user",
      ["node", HTTP_CHILD],
      ["--health", "http:/health", "--memory", "256M"],
    );
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const made = JSON.parse(r.stdout).results[0].child as Child;
    expect(await eventually(() => health(made.port), wait)).toEqual({ status: 200, pid: made.pid });
    expect(await userExists("enjin-webu")).toBe(true);
    expect(readFileSync(`/proc/${made.pid}/status`, "utf8")).not.toMatch(/^Uid:\s+0\s/m);
    const removed = await ctl(["child", "remove", "webu", "--node", n1]);
    expect(removed.code, removed.stderr).toBe(0);
    expect(removed.stdout).toContain("removed webu");
    expect((await children()).map((c) => c.name)).toEqual(["web"]);
    await expect(health(made.port)).rejects.toThrow();
    expect(() => process.kill(made.pid!, 0)).toThrow();
    expect(await userExists("enjin-webu")).toBe(false);
  });

  it("a crash-looping child is given up on, and the seed shows the signed event", async () => {
    const r = await create(
      "crashy",
      "proc",
      ["/bin/sh", "-c", "echo crashing; exit 3"],
      ["--restart-attempts", "1", "--restart-delay", "100ms", "--restart-max-delay", "200ms"],
    );
    expect(r.code, r.stdout + r.stderr).toBe(0);
    await eventually(async () => expect((await child("crashy"))?.phase).toBe("failed"), wait);
    const events = await eventually(async () => {
      const e = await ctl(["child", "events", "--json"]);
      expect(e.code, e.stderr).toBe(0);
      const out = JSON.parse(e.stdout) as { events: Record<string, unknown>[]; unverified: number };
      expect(out.events.map((x) => x.child)).toContain("crashy");
      return out;
    }, wait);
    const n1Key = keyHex((await readKeyFile(join(dir, "n1", "node.key")))!.publicKey);
    expect(events.unverified).toBe(0);
    expect(events.events[0]).toMatchObject({
      node: n1Key,
      child: "crashy",
      strategy: "proc",
      restarts: 1,
      verified: true,
    });
    expect(String(events.events[0]!.reason)).toMatch(/exit/);
    const text = await ctl(["child", "events"]);
    expect(text.stdout).toMatch(/crashy\s+1\s+/);
  });

  it("bad specs and a viewer's changes are refused by name, a viewer's list answered, and nothing changes", async () => {
    // A third child takes the last of the node's three ports.
    expect((await create("idle", "proc", ["/bin/sleep", "600"])).code).toBe(0);
    const before = await children();
    expect(before.map((c) => c.name)).toEqual(["crashy", "idle", "web"]);
    const refusals: [string[], string][] = [
      [
        ["child", "create", "a", "--node", n1, "--strategy", "docker", "--", "node", HTTP_CHILD],
        "UnknownStrategyError",
      ],
      [
        ["child", "create", "b", "--node", n1, "--strategy", "proc", "--", "/no/such/program"],
        "MissingBinaryError",
      ],
      [
        ["child", "create", "web", "--node", n1, "--strategy", "proc", "--", "node", HTTP_CHILD],
        "NameTakenError",
      ],
      [
        [
          "child",
          "create",
          "c",
          "--node",
          n1,
          "--strategy",
          "proc",
          "--memory",
          "64M",
          "--",
          "node",
          HTTP_CHILD,
        ],
        "UnenforceableLimitError",
      ],
      [
        ["child", "create", "d", "--node", n1, "--strategy", "proc", "--", "node", HTTP_CHILD],
        "PortRangeExhaustedError",
      ],
    ];
    for (const [args, name] of refusals) {
      const r = await ctl(args);
      expect(r.code, `${name}: ${r.stdout} ${r.stderr}`).toBe(1);
      expect(r.stdout + r.stderr).toContain(name);
      const json = await ctl([
        ...args.slice(0, args.indexOf("--")),
        "--json",
        ...args.slice(args.indexOf("--")),
      ]);
      expect(JSON.parse(json.stdout).results[0].error.name).toBe(name);
    }
    // The memory limit names which limit the proc strategy cannot enforce.
    expect((await ctl(refusals[3]![0])).stdout).toMatch(/memoryBytes/);
    // A viewer's key may read but not act. Its child list is answered; its changes are refused by
    // whichever node it is handed to, counted there by name and not passed on, so nothing changes.
    const key = join(dir, "viewer.key");
    const made = await procs.run("ringctl", ["keygen", "--out", key, "--json"]);
    const viewer = JSON.parse(made.stdout).publicKey as string;
    expect((await ctl(["operator", "add", viewer, "--role", "viewer"])).code).toBe(0);
    const asViewer = (args: string[], node: string) => {
      const dash = args.indexOf("--");
      const at = dash === -1 ? args.length : dash;
      return ctl([...args.slice(0, at), "--key", key, ...args.slice(at)], node);
    };
    const counters = async (node: string): Promise<Record<string, number>> =>
      JSON.parse((await ctl(["status", "--json"], node)).stdout).counters;
    for (const node of ["seed", "n1"])
      await eventually(async () => {
        const r = await asViewer(["child", "list", "--node", n1, "--json", "--timeout", "5s"], node);
        expect(r.code, `${node}: ${r.stderr}`).toBe(0);
        expect(JSON.parse(r.stdout).results[0].children).toEqual(before);
      }, wait);
    const changes: [string[], string][] = [
      [
        ["child", "create", "v", "--node", n1, "--strategy", "proc", "--", "node", HTTP_CHILD],
        "viewer-may-not-child-create",
      ],
      [["child", "remove", "web", "--node", n1], "viewer-may-not-child-remove"],
      [["exec", "--ring", "1", "--timeout", "5s", "--", "true"], "viewer-may-not-exec"],
    ];
    for (const node of ["seed", "n1"])
      for (const [args, reason] of changes) {
        const elsewhere = node === "seed" ? "n1" : "seed";
        const was = { here: await counters(node), there: await counters(elsewhere) };
        const r = await asViewer(args, node);
        expect(r.code, `${args.join(" ")} at ${node}: ${r.stdout} ${r.stderr}`).toBe(4);
        expect(r.stderr).toContain(reason);
        expect(r.stderr).toMatch(/this key has roles viewer, so it may send only child\.list, child\.logs/);
        const after = { here: await counters(node), there: await counters(elsewhere) };
        expect(after.here[`rejected:${reason}`]).toBe((was.here[`rejected:${reason}`] ?? 0) + 1);
        expect(after.here["commands-run"]).toBe(was.here["commands-run"]);
        // Not passed on: the other node never saw it.
        expect(after.there[`rejected:${reason}`]).toBe(was.there[`rejected:${reason}`]);
        expect(after.there["commands-run"]).toBe(was.there["commands-run"]);
      }
    expect(await children()).toEqual(before);
  });

  it("a ringd restart recovers the running child: same pid, one process, not started again", async () => {
    const before = (await child("web"))!;
    const cwd = join(dir, "n1-children", "web", "dir");
    expect(processesIn(cwd)).toEqual([before.pid]);
    const n1d = daemons.get("n1")!;
    const stopped = new Promise((resolve) => n1d.once("exit", resolve));
    n1d.kill("SIGTERM");
    await stopped;
    expect(await health(before.port)).toEqual({ status: 200, pid: before.pid }); // it outlived ringd
    await procs.waitReady(startN1(), join(dir, "n1"), wait);
    const after = await eventually(async () => (await child("web"))!, { ...wait, timeoutMs: 30_000 }).catch(
      async (err) => {
        const seen = async (at: string) => (await ctl(["nodes", "--json"], at)).stdout;
        const counters = async (at: string) =>
          JSON.stringify(JSON.parse((await ctl(["status", "--json"], at)).stdout).counters);
        throw new Error(
          `seed sees:\n${await seen("seed")}\nn1 sees:\n${await seen("n1")}\nseed ${await counters("seed")}\nn1 ${await counters("n1")}`,
          { cause: err },
        );
      },
    );
    expect(after).toMatchObject({
      pid: before.pid,
      port: before.port,
      phase: "running",
      restarts: before.restarts,
    });
    expect(processesIn(cwd)).toEqual([before.pid]);
  });

  it("child remove frees the ports: a new child gets one again", async () => {
    for (const name of ["web", "idle", "crashy"]) {
      const r = await ctl(["child", "remove", name, "--node", n1]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`removed ${name}`);
    }
    expect(await children()).toEqual([]);
    await expect(health(web.port)).rejects.toThrow();
    // Its port is free again: a new child gets one of the three.
    const again = await create("web", "proc", ["node", HTTP_CHILD]);
    expect(again.code, again.stderr).toBe(0);
    expect(CHILD_PORTS).toContain(JSON.parse(again.stdout).results[0].child.port);
    expect((await ctl(["child", "remove", "web", "--node", n1])).code).toBe(0);
  });
});
