/**
 * Rings that host themselves (issue 4), with real processes as root: a ring-0 seed (`ringd start`)
 * creates a ring-1 ringd as a supervised `unix-user` child (`ringctl node create`), minting its token
 * itself; the child joins by itself and shows in `ringctl nodes` under the seed. The ring-1 agent runs
 * a ring-2 app (the HTTP fixture, strategy `proc`: a ring-1 agent under unix-user is not root) that
 * answers on the port ring 1 allocated. kill -9 of the ring-1 agent: the seed restarts it and it comes
 * back with its own key, no new token. kill -9 of the seed: on restart it recovers its ring-1 child
 * (same pid), which kept its app. Ring 1 starts a ring-2 ringd the same way, and it joins. Each
 * ringd child is allocated the whole block of ports it listens on (peers, joins, its children's
 * network), so the seed's next child gets none of them.
 *
 * unix-user rather than jail: a jailed ring-1 agent is its pid namespace's init side, so its ring-2
 * apps die with it by construction and could never be recovered with the same pid.
 *
 * The ring-2 ringd lives on the children's network its ring-1 parent hosts (child-network.ts): ring 1
 * lists it alive under itself, the seed lists it under ring 1, and a command from the seed reaches
 * it through ring 1 and its signed answer comes back. After kill -9 of a ring-1 agent whose ring-2
 * app still runs, the agent restarts into its cgroup beside the app and recovers it.
 */
import { type ChildProcess, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdtemp, readFile, rm, rmdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CHILD_NETWORK_PORT_OFFSET,
  JOIN_PORT_OFFSET,
  RINGD_PORT_BLOCK,
} from "../../agent/node/ringd-ports.ts";
import { RINGD_CHILD_STATE_DIR, RINGD_CHILD_TOKEN_FILE } from "../../agent/node/self-host.ts";
import { detectCgroups } from "../../agent/supervise/cgroup-layout.ts";
import { processesOfUid, readProcessUid } from "../../agent/supervise/linux-process.ts";
import { deriveUserName, findAccount } from "../../agent/supervise/unix-user-account.ts";
import { controlCall, type Ran, RingdProcesses } from "../../scripts/ringd-process.ts";
import { eventually } from "../support/eventually.ts";

const procs = new RingdProcesses();
console.info(`ringd and ringctl run from ${procs.runner} (${procs.reason})`);

const NAME = `sh-${randomBytes(3).toString("hex")}`;
const USER = deriveUserName("enjin-", NAME);
// Below the kernel's ephemeral ports (32768+), where outgoing connections of other tests would
// collide, in a stretch no other integration file uses (mesh.integ.ts).
const P = 30_000 + 50 * Math.floor(Math.random() * 48);
const SEED_CHILD_PORTS = { firstPort: P + 10, lastPort: P + 19 };
const RING1_CHILD_PORTS = { firstPort: P + 20, lastPort: P + 29 };
const FIXTURE = join(procs.root, "agent", "supervise", "fixtures", "http-child.mjs");
const slow = { timeoutMs: 60_000, intervalMs: 200 };

let base: string;
let seedDir: string;
let seed: ChildProcess;
let seedKey: string;
let ring1Dir: string;
let ring1Key: string;
let ring2State: string;
let ring2Key: string;

type Child = {
  name: string;
  phase: string;
  pid: number | null;
  port: number;
  portCount: number;
  restarts: number;
};
type NodeRow = { id: string; state: string; certificate: { ring: number; issuer: string } | null };

/** ringctl at the seed. */
const ctl = (args: string[]): Promise<Ran> => procs.ctl(args, seedDir);

async function ctlJson(args: string[]): Promise<Record<string, unknown>> {
  const r = await ctl([...args, "--json"]);
  if (r.code !== 0) throw new Error(`ringctl ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** A control call to the ringd whose state is in `dataDir`. */
const control = async (dataDir: string, method: string, params: unknown = {}) =>
  (await controlCall(dataDir, method, params)) as Record<string, unknown>;

/** The children of node `key` as it reports them (a signed child.list through the seed). */
async function childrenOf(key: string): Promise<Child[]> {
  const r = await ctlJson(["child", "list", "--node", key]);
  const [result] = r.results as { children: Child[] }[];
  if (result === undefined) throw new Error(`node ${key} did not answer child.list`);
  return result.children;
}

async function childOf(key: string, name: string): Promise<Child> {
  const c = (await childrenOf(key)).find((x) => x.name === name);
  if (c === undefined) throw new Error(`node ${key} has no child ${name}`);
  return c;
}

/** How many sockets listen on TCP `port` (IPv4 and IPv6). */
async function listeners(port: number): Promise<number> {
  const hex = port.toString(16).toUpperCase().padStart(4, "0");
  let n = 0;
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    const text = await readFile(file, "utf8").catch(() => "");
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[1]?.endsWith(`:${hex}`) && f[3] === "0A") n++;
    }
  }
  return n;
}

async function health(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/health`);
  if (res.status !== 200) throw new Error(`GET /health answered ${res.status}`);
  return (await res.text()).trim();
}

function startSeed(): ChildProcess {
  const range = `${SEED_CHILD_PORTS.firstPort}-${SEED_CHILD_PORTS.lastPort}`;
  return procs.spawn("ringd", [
    "start",
    "--data-dir",
    seedDir,
    "--child-ports",
    range,
    "--log-level",
    "warn",
  ]);
}

beforeAll(async () => {
  if (process.getuid?.() !== 0)
    throw new Error("self-host.integ.ts needs root (the ring-1 child runs as a user of its own)");
  base = await mkdtemp("/tmp/enjin-selfhost-");
  await chmod(base, 0o711); // the child's user passes through to its own directory
  seedDir = join(base, "seed");
  ring1Dir = join(`${seedDir}-children`, NAME, "dir");
  const init = await procs.run("ringd", [
    "init",
    "--data-dir",
    seedDir,
    "--listen",
    `127.0.0.1:${P}`,
    "--json",
  ]);
  if (init.code !== 0) throw new Error(`ringd init: ${init.stderr}`);
  seedKey = JSON.parse(init.stdout).nodeKey;
  seed = startSeed();
  await procs.waitReady(seed, seedDir);
});

afterAll(async () => {
  // The seed removes its child: stops it, kills what is left of its user, removes user and cgroups.
  if (seed !== undefined && seed.exitCode === null && seed.signalCode === null)
    await ctl(["child", "remove", NAME, "--node", seedKey]).catch(() => undefined);
  await procs.stopAll();
  // Whatever a failed run left: the user's processes (by pid), the user, its cgroups.
  const account = await findAccount(USER);
  if (account.user !== undefined) {
    for (const pid of await processesOfUid(account.user.uid)) process.kill(pid, "SIGKILL");
    await new Promise((r) => setTimeout(r, 500)); // a moment for them to be reaped
    execFileSync("userdel", [USER]);
  }
  for (const h of (await detectCgroups()).hierarchies) {
    await rmdir(join(h.mountPath, "enjin", USER)).catch(() => undefined);
    await rmdir(join(h.mountPath, "enjin")).catch(() => undefined); // only if no other test uses it
  }
  if (base !== undefined) await rm(base, { recursive: true, force: true });
}, 60_000);

describe("self-hosting: seed -> ring-1 ringd (unix-user) -> ring-2 app (proc)", () => {
  it("the seed starts a ring-1 ringd that joins by itself and shows under the seed", async () => {
    const t0 = performance.now();
    const made = await ctlJson([
      "node",
      "create",
      NAME,
      "--strategy",
      "unix-user",
      "--child-ports",
      `${RING1_CHILD_PORTS.firstPort}-${RING1_CHILD_PORTS.lastPort}`,
    ]);
    expect(made.ring).toBe(1);
    const child = made.child as Child & { dir: string };
    expect(child.dir).toBe(ring1Dir);
    expect(child.port).toBeGreaterThanOrEqual(SEED_CHILD_PORTS.firstPort);
    expect(child.port).toBeLessThanOrEqual(SEED_CHILD_PORTS.lastPort);
    const row = await eventually(async () => {
      const nodes = (await control(seedDir, "nodes")).nodes as NodeRow[];
      const found = nodes.find((n) => n.certificate?.ring === 1 && n.state === "alive");
      if (found === undefined) throw new Error("no ring-1 member yet");
      return found;
    }, slow);
    console.info(`create -> certified ring-1 member: ${Math.round(performance.now() - t0)} ms`);
    expect(row.certificate!.issuer).toBe(seedKey);
    ring1Key = row.id;
    // Its control socket comes up just after it is a member (the last step of ringd start).
    const status = await eventually(() => control(join(ring1Dir, RINGD_CHILD_STATE_DIR), "status"), slow);
    expect(status.nodeKey).toBe(ring1Key);
    expect(status.ring).toBe(1);
    // Human output: the ring-1 node indented under the seed.
    const text = (await ctl(["nodes"])).stdout.split("\n");
    const seedLine = text.findIndex((l) => l.startsWith("0 ") && l.includes(" *"));
    const ring1Line = text.findIndex((l) => /^1 {5}alive {7}[a-z2-7]/.test(l)); // indented once
    expect(seedLine).toBeGreaterThan(0);
    expect(ring1Line).toBe(seedLine + 1);
    // One token was minted, for this child, and used up; its file is gone.
    const tokens = (await ctlJson(["token", "list"])).tokens as {
      usesLeft: number;
      scope: { ring: number };
    }[];
    expect(tokens.map((t) => [t.scope.ring, t.usesLeft])).toEqual([[1, 0]]);
    expect(existsSync(join(ring1Dir, RINGD_CHILD_TOKEN_FILE))).toBe(false);
  });

  it("the ring-1 ringd holds every port it listens on as one block; the seed's next child gets none of them", async () => {
    const ring1 = await childOf(seedKey, NAME);
    expect(RINGD_PORT_BLOCK).toBe(5);
    expect([ring1.port, ring1.portCount]).toEqual([SEED_CHILD_PORTS.firstPort, RINGD_PORT_BLOCK]);
    const block = Array.from({ length: RINGD_PORT_BLOCK }, (_, i) => ring1.port + i);
    // It really listens on its peer, join and children's-network ports, all inside the block.
    for (const offset of [0, JOIN_PORT_OFFSET, CHILD_NETWORK_PORT_OFFSET])
      await eventually(async () => expect(await listeners(ring1.port + offset)).toBeGreaterThan(0), slow);
    const text = (await ctl(["child", "list", "--node", seedKey])).stdout;
    expect(text).toMatch(
      new RegExp(`${NAME}\\s+unix-user\\s+running\\s+\\d+\\s+${block[0]}-${block.at(-1)}\\s`),
    );
    // An ordinary child of the seed, created after it, is handed the first port past the block.
    const r = await ctl([
      "child",
      "create",
      "next",
      "--node",
      seedKey,
      "--strategy",
      "proc",
      "--",
      "/bin/sleep",
      "600",
    ]);
    expect(r.code, r.stderr).toBe(0);
    try {
      const next = await childOf(seedKey, "next");
      expect(next.portCount).toBe(1);
      expect(block).not.toContain(next.port);
    } finally {
      const removed = await ctl(["child", "remove", "next", "--node", seedKey]);
      expect(removed.code, removed.stderr).toBe(0);
    }
  });

  it("the child's state is its own: its user's, unreadable by others, its key never on a command line", async () => {
    const { user } = await findAccount(USER);
    expect(user).toBeDefined();
    const uid = user!.uid;
    for (const [path, mode] of [
      [ring1Dir, 0o700],
      [join(ring1Dir, RINGD_CHILD_STATE_DIR), 0o700],
      [join(ring1Dir, RINGD_CHILD_STATE_DIR, "node.key"), 0o600],
    ] as const) {
      const s = await stat(path);
      expect([path, s.uid, s.mode & 0o777]).toEqual([path, uid, mode]);
    }
    const pid = (await childOf(seedKey, NAME)).pid!;
    expect(await readProcessUid(pid)).toBe(uid);
    for (const p of await processesOfUid(uid)) {
      const argv = await readFile(`/proc/${p}/cmdline`, "utf8").catch(() => "");
      expect(argv).not.toMatch(/enjin1\./); // no token in any argument list
    }
    expect((await ctl(["child", "list", "--json"])).stdout).not.toMatch(/enjin1\./);
  });

  it("kill -9 of the ring-1 agent: the seed restarts it; it comes back with its own key, no new token", async () => {
    const before = await childOf(seedKey, NAME);
    const t0 = performance.now();
    process.kill(before.pid!, "SIGKILL");
    const after = await eventually(async () => {
      const c = await childOf(seedKey, NAME);
      if (c.phase !== "running" || c.pid === before.pid) throw new Error(`still ${c.phase}`);
      const status = await control(join(ring1Dir, RINGD_CHILD_STATE_DIR), "status");
      return { child: c, status };
    }, slow);
    console.info(`kill -9 -> ring-1 agent answering again: ${Math.round(performance.now() - t0)} ms`);
    expect(after.child.restarts).toBe(before.restarts + 1);
    expect(after.status.nodeKey).toBe(ring1Key);
    const tokens = (await ctlJson(["token", "list"])).tokens as { usesLeft: number }[];
    expect(tokens.map((t) => t.usesLeft)).toEqual([0]);
    await eventually(async () => {
      const nodes = (await control(seedDir, "nodes")).nodes as NodeRow[];
      expect(nodes.find((n) => n.id === ring1Key)?.state).toBe("alive");
    }, slow);
  });

  it("ring 1 runs a ring-2 app (proc) answering HTTP on the port ring 1 allocated", async () => {
    const r = await ctl([
      "child",
      "create",
      "app",
      "--node",
      ring1Key,
      "--strategy",
      "proc",
      "--json",
      "--",
      process.execPath,
      FIXTURE,
    ]);
    expect(r.code, r.stderr).toBe(0);
    const app = await childOf(ring1Key, "app");
    expect(app.port).toBeGreaterThanOrEqual(RING1_CHILD_PORTS.firstPort);
    expect(app.port).toBeLessThanOrEqual(RING1_CHILD_PORTS.lastPort);
    expect(await eventually(() => health(app.port), slow)).toBe(`ok ${app.pid}`);
    expect(await readProcessUid(app.pid!)).toBe((await findAccount(USER)).user!.uid);
  });

  it("kill -9 of the seed: on restart it recovers its ring-1 child (same pid), which kept its app", async () => {
    const ring1 = await childOf(seedKey, NAME);
    const app = await childOf(ring1Key, "app");
    await procs.kill9(seed);
    seed = startSeed();
    await procs.waitReady(seed, seedDir);
    const again = await childOf(seedKey, NAME);
    expect([again.phase, again.pid, again.restarts]).toEqual(["running", ring1.pid, ring1.restarts]);
    // The restarted seed hears ring 1 again within a probe or two; until then it targets no one.
    const appAgain = await eventually(() => childOf(ring1Key, "app"), { timeoutMs: 15_000, intervalMs: 500 });
    expect([appAgain.phase, appAgain.pid]).toEqual(["running", app.pid]);
    expect(await health(app.port)).toBe(`ok ${app.pid}`);
    expect(await listeners(app.port)).toBe(1);
  });

  it("ring 1 starts a ring-2 ringd the same way (proc, as its own user); it joins with a certificate from ring 1", async () => {
    const made = (await control(join(ring1Dir, RINGD_CHILD_STATE_DIR), "node.create", {
      name: "r2",
      strategy: "proc",
      childPorts: { firstPort: P + 30, lastPort: P + 39 },
    })) as { ring: number; child: { dir: string; portCount: number } };
    expect(made.ring).toBe(2);
    expect(made.child.portCount).toBe(RINGD_PORT_BLOCK);
    ring2State = join(made.child.dir, RINGD_CHILD_STATE_DIR);
    const status = await eventually(() => control(ring2State, "status"), slow);
    expect(status.ring).toBe(2);
    const cert = await control(ring2State, "trust.certificate", { key: status.nodeKey });
    expect(cert.issuer).toBe(ring1Key);
    ring2Key = String(status.nodeKey);
  });

  it("ring 1 lists its ring-2 ringd as an alive member, under itself", async () => {
    await eventually(
      async () => {
        const nodes = (await control(join(ring1Dir, RINGD_CHILD_STATE_DIR), "nodes")).nodes as NodeRow[];
        const row = nodes.find((n) => n.id === ring2Key);
        expect([row?.state, row?.certificate?.issuer]).toEqual(["alive", ring1Key]);
      },
      { timeoutMs: 20_000, intervalMs: 500 },
    );
    // The ring-2 node hears its parent on that network, and nobody else's network took it in.
    const seen = (await control(ring2State, "nodes")).nodes as NodeRow[];
    expect(seen.find((n) => n.id === ring1Key)?.state).toBe("alive");
  }, 30_000);

  it("the seed lists the ring-2 ringd under ring 1, and a command from the seed reaches it through ring 1", async () => {
    const tree = await ctl(["nodes"]);
    expect(tree.code, tree.stderr).toBe(0);
    const rows = (await ctlJson(["nodes"])).nodes as NodeRow[];
    expect(rows.find((n) => n.id === ring2Key)?.certificate?.issuer).toBe(ring1Key);
    const r = await ctl(["exec", "--ring", "2", "--json", "--timeout", "20s", "--", "id", "-u"]);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    const out = JSON.parse(r.stdout) as {
      results: { node: string; exitCode: number; verified: boolean }[];
      missing: unknown[];
    };
    expect(out.missing).toEqual([]);
    expect(out.results.map((x) => [x.node, x.exitCode, x.verified])).toEqual([[ring2Key, 0, true]]);
  }, 60_000);

  it("a child of the ring-2 ringd, created from the seed through ring 1, gives up; ring 1 hears the signed event", async () => {
    const r = await ctl([
      "child",
      "create",
      "crashy",
      "--node",
      ring2Key,
      "--strategy",
      "proc",
      "--restart-attempts",
      "1",
      "--restart-delay",
      "100ms",
      "--restart-max-delay",
      "200ms",
      "--json",
      "--timeout",
      "20s",
      "--",
      "/bin/sh",
      "-c",
      "exit 3",
    ]);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    // ringctl at ring 1 verifies each event's signature itself.
    const args = ["child", "events", "--json", "--data-dir", join(ring1Dir, RINGD_CHILD_STATE_DIR)];
    await eventually(async () => {
      const e = await procs.run("ringctl", args);
      expect(e.code, e.stderr).toBe(0);
      const { events } = JSON.parse(e.stdout) as {
        events: { node: string; child: string; restarts: number; verified: boolean }[];
      };
      const event = events.find((x) => x.node === ring2Key && x.child === "crashy");
      expect([event?.restarts, event?.verified]).toEqual([1, true]);
    }, slow);
  }, 90_000);

  // The ring-2 app outlives its agent on purpose; the ring-1 agent restarts into its cgroup beside
  // it (unix-user's driver.adoptDescendants, which self-host sets for ringd children).
  it("kill -9 of the ring-1 agent with its app running: restarted, same key, app recovered", async () => {
    const ring1 = await childOf(seedKey, NAME);
    const app = await childOf(ring1Key, "app");
    process.kill(ring1.pid!, "SIGKILL");
    await eventually(
      async () => {
        const c = await childOf(seedKey, NAME);
        if (c.phase !== "running" || c.pid === ring1.pid)
          throw new Error(`ring-1 agent ${c.phase} ${JSON.stringify(c)}`);
        const status = await control(join(ring1Dir, RINGD_CHILD_STATE_DIR), "status");
        expect(status.nodeKey).toBe(ring1Key);
      },
      { timeoutMs: 20_000, intervalMs: 500 },
    );
    const appAgain = await childOf(ring1Key, "app");
    expect([appAgain.phase, appAgain.pid]).toEqual(["running", app.pid]);
    expect(await listeners(app.port)).toBe(1);
  }, 60_000);
});
