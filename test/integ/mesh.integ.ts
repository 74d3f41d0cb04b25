/**
 * The real mesh: a ring-0 seed and five ring-1 nodes, each a separate `ringd` process with its
 * state in LevelDB on disk, driven by the real `ringctl` — once on ZeroMQ CURVE sockets, once on
 * NATS (the seed's supervised nats-server, TLS and nkeys). Shows: a signed exec reaching every node
 * with every result verified; token reuse refused; a replayed and a forged command refused (and
 * the seen-set surviving a restart); kill -9 of a node and of the seed, then restart without a
 * token, with nothing acknowledged lost. On NATS also: the server admits members only to their own
 * subject, and a revoked node is cut off by the server.
 *
 * The processes are started by scripts/ringd-process.ts: the built JavaScript when dist/ is fresh
 * (`npm test` builds first), else the sources under tsx.
 */
import type { ChildProcess } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, nkeyAuthenticator } from "nats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectControl } from "../../agent/daemon/index.ts";
import { NATS_CERT_FILE, NATS_PID_FILE } from "../../agent/nats-server-files.ts";
import { NATS_DATA_DIR, natsMeshToken } from "../../agent/node/nats-link.ts";
import { readKeyFile } from "../../agent/store/key-file.ts";
import { defaultNatsAddress, natsSubject } from "../../agent/transport/nats.ts";
import { userNkeySeed } from "../../agent/transport/nkey.ts";
import {
  encodePayload,
  fingerprint,
  generateIdentity,
  type Identity,
  keyHex,
  MessageType,
  type Selector,
  sealEnvelope,
} from "../../protocol/index.ts";
import { type Ran, RingdProcesses } from "../../scripts/ringd-process.ts";
import { eventually } from "../support/eventually.ts";

const NODES = 5;
const TRANSPORTS = ["zeromq", "nats"] as const;
/** Ports used by one transport's mesh: node i listens on base + 10 i (+1 joins, +2 nats-server). */
const PORTS_PER_MESH = 1_000;
// Listen ports lie below the kernel's ephemeral range (32768+), where another test's outgoing
// connection once held the seed's port; each integration file keeps to its own stretch of it.
const FIRST_PORT = 20_000 + Math.floor(Math.random() * 3_600);
const wait = { timeoutMs: 60_000, intervalMs: 250 };

/** The built ringd when dist/ is fresh (npm test builds first), else the sources under tsx. */
const procs = new RingdProcesses();
console.info(`ringd and ringctl run from ${procs.runner} (${procs.reason})`);
const run = (bin: "ringd" | "ringctl", args: string[]): Promise<Ran> => procs.run(bin, args);

// One mesh at a time (describe blocks run in order): each describe's beforeAll sets these.
let dir: string;
let BASE_PORT: number;
let transport: (typeof TRANSPORTS)[number];
const daemons = new Map<string, ChildProcess>();

/** Start `ringd start` (or `join --start`) for data dir `name` in the background. */
function startDaemon(name: string, args: string[] = ["start"]): ChildProcess {
  const child = procs.spawn("ringd", [...args, "--data-dir", join(dir, name), "--log-level", "warn"]);
  daemons.set(name, child);
  return child;
}

async function kill9(name: string): Promise<void> {
  const child = daemons.get(name);
  if (child !== undefined) await procs.kill9(child);
}

/** ringctl against `node`'s ringd. */
const ctl = (args: string[], node = "seed"): Promise<Ran> => procs.ctl(args, join(dir, node));
const ranCount = async (node: string) =>
  JSON.parse((await ctl(["status", "--json"], node)).stdout).counters["commands-run"] ?? 0;

/** Every daemon's command, result and rejection counters and transport state, to say why an exec missed. */
async function countersOfAll(): Promise<string> {
  const lines: string[] = [];
  for (const name of daemons.keys()) {
    const r = await ctl(["status", "--json"], name);
    if (r.code !== 0) {
      lines.push(`${name}: status failed: ${r.stderr}`);
      continue;
    }
    const status = JSON.parse(r.stdout) as { counters: Record<string, number>; transport: unknown };
    const counters = Object.entries(status.counters).filter(([k]) =>
      /^(rejected:|results-|commands-|duplicate$)/.test(k),
    );
    lines.push(
      `${name}: ${JSON.stringify(Object.fromEntries(counters))} ${JSON.stringify(status.transport)}`,
    );
  }
  return lines.join("\n");
}

async function nodesSeenBy(node: string): Promise<{ state: string; self: boolean; id: string }[]> {
  const r = await ctl(["nodes", "--json"], node);
  if (r.code !== 0) throw new Error(`ringctl nodes: ${r.stderr}`);
  return JSON.parse(r.stdout).nodes;
}

async function submit(envelope: Uint8Array, node = "seed"): Promise<unknown> {
  const client = await connectControl(join(dir, node, "ringd.sock"));
  try {
    return await client.call("command.submit", {
      envelope: Buffer.from(envelope).toString("base64"),
      waitMs: 5_000,
    });
  } finally {
    client.close();
  }
}

function command(signer: Identity, args: string[], selector: Selector = {}, nonce = 1): Uint8Array {
  const now = Date.now();
  return sealEnvelope(
    signer,
    MessageType.Command,
    encodePayload(MessageType.Command, {
      selector,
      action: "exec",
      args,
      nonce: new Uint8Array(16).fill(nonce),
      issuedAtMs: now,
      expiresMs: now + 10 * 60_000,
    }),
  );
}

/** A nats-server the seed left running when it was killed with -9 (the next start would reclaim it). */
async function killOrphanNatsServer(): Promise<void> {
  const natsDir = join(dir, "seed", NATS_DATA_DIR);
  try {
    const pid = Number.parseInt(await readFile(join(natsDir, NATS_PID_FILE), "utf8"), 10);
    const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8");
    if (cmdline.includes("nats-server") && cmdline.includes(natsDir)) process.kill(pid, "SIGKILL");
  } catch {
    // no server, or it is gone already
  }
}

/** What only the NATS mesh shows: the seed's server enforces who may use which subject. */
function natsOnly(): void {
  it("the nats-server admits a member's nkey to its own subject only, and cuts off a revoked node", async () => {
    const meshId = JSON.parse((await ctl(["status", "--json"])).stdout).meshId as string;
    const mesh = natsMeshToken(meshId);
    const ca = await readFile(join(dir, "seed", NATS_DATA_DIR, NATS_CERT_FILE), "utf8");
    const victim = (await readKeyFile(join(dir, "n5", "node.key")))!;
    const seedKey = (await readKeyFile(join(dir, "seed", "node.key")))!;
    const options = {
      servers: `nats://127.0.0.1:${BASE_PORT + 2}`,
      tls: { ca },
      authenticator: nkeyAuthenticator(userNkeySeed(victim.secretKey)),
      maxReconnectAttempts: 0,
    };
    // A client holding n5's key (as a stolen key would be): it hears n5's own subject ...
    const nc = await connect(options);
    try {
      let heard = 0;
      const raw: Uint8Array[] = [];
      nc.subscribe(natsSubject(mesh, defaultNatsAddress(victim.publicKey)), {
        callback: (_err, msg) => {
          heard++;
          raw.push(msg.data);
        },
      });
      // ... but the server refuses it the seed's subject.
      let refused: Error | undefined;
      nc.subscribe(natsSubject(mesh, defaultNatsAddress(seedKey.publicKey)), {
        callback: (err) => {
          if (err !== null) refused = err;
        },
      });
      await nc.flush();
      await eventually(() => expect(String(refused)).toMatch(/permissions violation/i), wait);
      await eventually(() => expect(heard).toBeGreaterThan(0), wait);
      // What the broker carries is sealed with the ring secret: no frame shows a member's key, which
      // every unsealed envelope carries in the clear, nor the frame version byte in front.
      const members = await Promise.all(
        ["seed", "n1", "n2", "n3", "n4", "n5"].map(
          async (n) => (await readKeyFile(join(dir, n, "node.key")))!,
        ),
      );
      const keys = members.map((k) => Buffer.from(k.publicKey));
      for (const bytes of raw) {
        const b = Buffer.from(bytes);
        expect(keys.some((k) => b.includes(k))).toBe(false);
      }

      const revoked = await ctl(["revoke", fingerprint(victim.publicKey), "--reason", "test"]);
      expect(revoked.code, revoked.stderr).toBe(0);
      // The seed reloads its server without n5's nkey: the server closes n5's connections.
      const closed = await Promise.race([
        nc.closed().then(() => "closed"),
        new Promise((r) => setTimeout(() => r("still open"), 15_000)),
      ]);
      expect(closed).toBe("closed");
    } finally {
      await nc.close().catch(() => undefined);
    }
    await expect(connect(options)).rejects.toThrow(/authorization/i);
    const n5 = (await nodesSeenBy("seed")).find((n) => n.id === keyHex(victim.publicKey));
    expect(n5?.state).toBe("revoked");
    await eventually(async () => {
      const status = JSON.parse((await ctl(["status", "--json"], "n5")).stdout);
      expect(status.transport.disconnects).toBeGreaterThanOrEqual(1);
    }, wait);
  });

  it("SIGTERM stops the seed and its nats-server with it", async () => {
    const pidFile = join(dir, "seed", NATS_DATA_DIR, NATS_PID_FILE);
    const pid = Number.parseInt(await readFile(pidFile, "utf8"), 10);
    expect(() => process.kill(pid, 0)).not.toThrow();
    const seed = daemons.get("seed")!;
    const exited = new Promise((resolve) => seed.once("exit", resolve));
    seed.kill("SIGTERM");
    await exited;
    expect(seed.exitCode).toBe(0);
    await eventually(async () => {
      const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "gone");
      expect(stat === "gone" || / Z /.test(stat)).toBe(true); // exited (perhaps not yet reaped)
    }, wait);
  });
}

for (const [index, name] of TRANSPORTS.entries()) {
  describe(`a seed and ${NODES} joined ringd processes over ${name}`, () => {
    beforeAll(async () => {
      transport = name;
      BASE_PORT = FIRST_PORT + index * PORTS_PER_MESH;
      dir = await mkdtemp(join(tmpdir(), `enjin-mesh-${transport}-`));
      const init = await run("ringd", [
        "init",
        "--data-dir",
        join(dir, "seed"),
        "--listen",
        `127.0.0.1:${BASE_PORT}`,
        "--transport",
        transport,
      ]);
      expect(init.code, init.stderr).toBe(0);
      await procs.waitReady(startDaemon("seed"), join(dir, "seed"), wait);
      const token = await ctl([
        "token",
        "create",
        "--ring",
        "1",
        "--tier",
        "web",
        "--uses",
        String(NODES),
        "--ttl",
        "10m",
      ]);
      expect(token.code, token.stderr).toBe(0);
      for (let i = 1; i <= NODES; i++) {
        const joined = await run("ringd", [
          "join",
          token.stdout.trim(),
          "--data-dir",
          join(dir, `n${i}`),
          "--listen",
          `127.0.0.1:${BASE_PORT + 10 * i}`,
          "--name",
          `n${i}`,
          "--transport",
          transport,
        ]);
        expect(joined.code, joined.stderr).toBe(0);
        expect(joined.stdout).toMatch(/joined mesh ed25519:\w+ as a ring-1 node \(tiers web\)/);
        startDaemon(`n${i}`);
      }
      await eventually(async () => {
        const nodes = await nodesSeenBy("seed");
        expect(nodes.filter((n) => n.state === "alive")).toHaveLength(NODES + 1);
      }, wait);
    }, 300_000);

    afterAll(async () => {
      for (const name of daemons.keys()) await kill9(name);
      daemons.clear();
      await killOrphanNatsServer();
      await rm(dir, { recursive: true, force: true });
    });

    it("exec reaches every node, and ringctl verifies every signed result", async () => {
      const r = await ctl(["exec", "--json", "--timeout", "20s", "--", "echo", "hello"]);
      expect(r.code, r.code === 0 ? "" : `${r.stdout}\n${r.stderr}\n${await countersOfAll()}`).toBe(0);
      const out = JSON.parse(r.stdout) as {
        id: string;
        results: { node: string; exitCode: number; stdout: string; verified: boolean }[];
        missing: unknown[];
      };
      expect(out.id).toMatch(/^[0-9a-f]{32}$/); // the command's message id, printable
      expect(out.missing).toEqual([]);
      expect(out.results).toHaveLength(NODES + 1);
      expect(new Set(out.results.map((x) => x.node)).size).toBe(NODES + 1);
      for (const x of out.results)
        expect(x).toMatchObject({ exitCode: 0, stdout: "hello\n", verified: true });
      // A selector narrows: ring 1 only, and a failing command gives exit 1 with each node's code.
      const ring1 = await ctl([
        "exec",
        "--json",
        "--ring",
        "1",
        "--timeout",
        "20s",
        "--",
        "sh",
        "-c",
        "exit 3",
      ]);
      expect(ring1.code).toBe(1);
      const out1 = JSON.parse(ring1.stdout) as { results: { exitCode: number }[] };
      expect(out1.results.map((x) => x.exitCode)).toEqual(Array(NODES).fill(3));
    });

    it("a used-up token is refused at the joiner with a clear message, and nothing changes at the issuer", async () => {
      const before = await ctl(["token", "list", "--json"]);
      const token = JSON.parse(before.stdout).tokens[0];
      expect(token.usesLeft).toBe(0);
      const again = await ctl(["token", "create", "--ring", "1", "--uses", "1"]);
      const reuse = await run("ringd", [
        "join",
        again.stdout.trim(),
        "--data-dir",
        join(dir, "x1"),
        "--listen",
        `127.0.0.1:${BASE_PORT + 200}`,
        "--transport",
        transport,
      ]);
      expect(reuse.code).toBe(0); // the fresh token works once ...
      const twice = await run("ringd", [
        "join",
        again.stdout.trim(),
        "--data-dir",
        join(dir, "x2"),
        "--listen",
        `127.0.0.1:${BASE_PORT + 210}`,
        "--transport",
        transport,
      ]);
      expect(twice.code).toBe(4); // ... and only once
      expect(twice.stderr).toMatch(/refused the join: .*used up/);
      const after = await ctl(["token", "list", "--json"]);
      const listed = JSON.parse(after.stdout).tokens as { id: string; usesLeft: number }[];
      expect(listed.find((t) => t.id === token.id)?.usesLeft).toBe(0);
      expect(listed.every((t) => t.usesLeft === 0)).toBe(true);
    });

    it("refuses a replayed command and a forged one, and the seen-set survives a restart", async () => {
      const operator = (await readKeyFile(join(dir, "seed", "operator.key")))!;
      const cmd = command(operator, ["true"], { ring: 1 }, 7);
      const first = (await submit(cmd)) as { results: string[] };
      expect(first.results).toHaveLength(NODES);
      await expect(submit(cmd)).rejects.toThrow(/duplicate/);
      // Not an operator: a key nobody certified, and a node's own key.
      await expect(submit(command(generateIdentity(), ["true"], {}, 8))).rejects.toThrow(/unknown-sender/);
      const nodeKey = (await readKeyFile(join(dir, "n1", "node.key")))!;
      await expect(submit(command(nodeKey, ["true"], {}, 9))).rejects.toThrow(/not-an-operator/);
      // Restart node 1 (its gossip seen-set is gone, its LevelDB seen-set is not) and replay there.
      await kill9("n1");
      await procs.waitReady(startDaemon("n1"), join(dir, "n1"), wait);
      const ran = await Promise.all(["seed", "n2", "n3", "n4", "n5"].map(ranCount));
      // The replay may reach n1 first through its neighbours' anti-entropy (then our copy is a gossip
      // duplicate); either way it arrives at a node whose gossip memory is empty and whose LevelDB
      // seen-set is not.
      await submit(cmd, "n1").catch((err) => expect(String(err)).toMatch(/duplicate/));
      await eventually(async () => {
        const status = JSON.parse((await ctl(["status", "--json"], "n1")).stdout);
        // Anti-entropy also brings back the earlier tests' commands: each is refused, none is run.
        expect(status.counters["rejected:command-replayed"]).toBeGreaterThanOrEqual(1);
      }, wait);
      expect(await ranCount("n1")).toBe(0); // n1 has not run anything since its restart
      expect(await Promise.all(["seed", "n2", "n3", "n4", "n5"].map(ranCount))).toEqual(ran);
    });

    it("kill -9 of a node: exec reports it missing; restarted without a token, it answers again", async () => {
      await kill9("n2");
      const r = await ctl(["exec", "--json", "--timeout", "5s", "--", "true"]);
      expect(r.code).toBe(3);
      const out = JSON.parse(r.stdout) as { results: unknown[]; missing: { id: string; state: string }[] };
      expect(out.missing).toHaveLength(1);
      expect(["alive", "suspect", "dead"]).toContain(out.missing[0]!.state);
      startDaemon("n2");
      await eventually(async () => {
        const again = await ctl(["exec", "--json", "--timeout", "10s", "--", "true"]);
        expect(again.code, again.stdout).toBe(0);
      }, wait);
    });

    it("kill -9 of the seed: restarted, it keeps its members, tokens and certificates", async () => {
      const tokensBefore = JSON.parse((await ctl(["token", "list", "--json"])).stdout).tokens;
      await kill9("seed");
      startDaemon("seed");
      await eventually(async () => {
        const nodes = await nodesSeenBy("seed");
        expect(nodes.filter((n) => n.state === "alive").length).toBeGreaterThanOrEqual(NODES + 1);
      }, wait);
      expect(JSON.parse((await ctl(["token", "list", "--json"])).stdout).tokens).toEqual(tokensBefore);
      const r = await ctl([
        "exec",
        "--json",
        "--ring",
        "1",
        "--tier",
        "web",
        "--timeout",
        "20s",
        "--",
        "echo",
        "back",
      ]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
    });

    it("ringctl revoke cuts a node off everywhere: listed as revoked, no longer expected or heard", async () => {
      const victimKey = (await readKeyFile(join(dir, "n4", "node.key")))!;
      const victim = { id: keyHex(victimKey.publicKey) };
      const revoked = await ctl(["revoke", victim.id, "--reason", "test"]);
      expect(revoked.code, revoked.stderr).toBe(0);
      for (const node of ["seed", "n1", "n2", "n3"]) {
        await eventually(async () => {
          const seen = (await nodesSeenBy(node)).find((n) => n.id === victim.id);
          expect(seen?.state).toBe("revoked");
        }, wait);
      }
      const r = await ctl(["exec", "--json", "--timeout", "20s", "--", "true"]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const out = JSON.parse(r.stdout) as { results: { node: string }[]; missing: unknown[] };
      expect(out.results.map((x) => x.node)).not.toContain(victim.id);
      expect(out.missing).toEqual([]);
      expect(out.results).toHaveLength(NODES);
    });

    it("a second ring-0 seed joins with a root-signed ring-0 token and certifies ring-1 nodes itself", async () => {
      const t0 = await ctl(["token", "create", "--ring", "0", "--ttl", "10m"]);
      expect(t0.code, t0.stderr).toBe(0);
      const s2 = await run("ringd", [
        "join",
        t0.stdout.trim(),
        "--data-dir",
        join(dir, "s2"),
        "--listen",
        `127.0.0.1:${BASE_PORT + 300}`,
        "--transport",
        transport,
      ]);
      expect(s2.code, s2.stderr).toBe(0);
      expect(s2.stdout).toMatch(/as a ring-0 node/);
      await procs.waitReady(startDaemon("s2"), join(dir, "s2"), wait);
      // A ring-1 node certified by the second seed is trusted by the first one.
      const t1 = await ctl(["token", "create", "--ring", "1", "--ttl", "10m"], "s2");
      expect(t1.code, t1.stderr).toBe(0);
      const n7 = await run("ringd", [
        "join",
        t1.stdout.trim(),
        "--data-dir",
        join(dir, "n7"),
        "--listen",
        `127.0.0.1:${BASE_PORT + 310}`,
        "--transport",
        transport,
      ]);
      expect(n7.code, n7.stderr).toBe(0);
      startDaemon("n7");
      const n7Key = keyHex((await readKeyFile(join(dir, "n7", "node.key")))!.publicKey);
      const s2Key = keyHex((await readKeyFile(join(dir, "s2", "node.key")))!.publicKey);
      await eventually(async () => {
        const seen = await nodesSeenBy("seed");
        expect(seen.find((n) => n.id === s2Key)?.state).toBe("alive");
        expect(seen.find((n) => n.id === n7Key)?.state).toBe("alive");
      }, wait);
      // Only the seed holding the root key mints ring-0 tokens.
      expect((await ctl(["token", "create", "--ring", "0"], "s2")).code).toBe(4);
    });

    if (name === "nats") natsOnly();
  });
}
