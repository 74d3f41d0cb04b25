/**
 * The mesh past one machine, on NATS: two ring-0 seeds, each `ringd` in its own network namespace
 * with its own supervised nats-server, cluster those servers with TLS routes; a ring-1 node joins
 * through each seed and connects to that seed's server. Shows: `ringctl exec` through the second
 * seed reaches all four; both servers list the route (`/routez`) and frames cross it; kill -9 of
 * the first seed's whole namespace (ringd and nats-server, as a machine dies) leaves the second
 * seed's side working, and the restarted seed's server routes again; revoking a seed takes its
 * route out.
 *
 * And `--nats-url`: a seed and a ring-1 node that run no server of their own and talk through a
 * nats-server this test starts (on loopback, as an existing cluster would be run by its operator).
 *
 * ringd and ringctl run as scripts/ringd-process.ts runs them (the fresh build when there is one),
 * each ringd behind `ip netns exec`, as in netns.integ.ts. Needs root, `ip` (iproute2),
 * `nats-server` and `openssl` (CI installs them): nothing is skipped.
 */
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type NatsServer, startNatsServer } from "../../agent/nats-server.ts";
import { NATS_CERT_FILE, NATS_CONFIG_FILE } from "../../agent/nats-server-files.ts";
import { NATS_DATA_DIR, NATS_PORT_OFFSET, natsMeshToken } from "../../agent/node/nats-link.ts";
import { NATS_ROUTE_PEERS_FILE } from "../../agent/node/nats-routes.ts";
import { readKeyFile } from "../../agent/store/key-file.ts";
import { natsMemberPermissions } from "../../agent/transport/nats.ts";
import { keyHex } from "../../protocol/index.ts";
import { type Ran, RingdProcesses } from "../../scripts/ringd-process.ts";
import { eventually } from "../support/eventually.ts";
import { makeNetwork, type NetnsNetwork } from "../support/netns.ts";

const wait = { timeoutMs: 90_000, intervalMs: 500 };
/** Every node listens on this port in its own namespace (+1 joins, +2 nats clients, +3 routes). */
const PORT = 7570;

const procs = new RingdProcesses();
console.info(`ringd and ringctl run from ${procs.runner} (${procs.reason})`);
let dir: string;

/** ringctl from the root namespace, through `node`'s control socket (a UNIX socket in its data dir). */
const ctl = (args: string[], node: string): Promise<Ran> => procs.ctl(args, join(dir, node));

interface ExecOut {
  readonly results: { node: string; exitCode: number; stdout: string; verified: boolean }[];
  readonly missing: { id: string; state: string }[];
}

/** `ringctl exec` through `node`'s ringd, signed with the operator key `ringd init` made on `keyNode`. */
async function execVia(
  node: string,
  command: string[],
  selector: string[] = [],
  keyNode = "a",
): Promise<Ran & { out: ExecOut }> {
  const key = ["--key", join(dir, keyNode, "operator.key")];
  const r = await ctl(["exec", "--json", ...key, ...selector, "--timeout", "15s", "--", ...command], node);
  let out: ExecOut = { results: [], missing: [] };
  try {
    out = JSON.parse(r.stdout);
  } catch {
    // left empty: the caller's expectation on `code` says what went wrong
  }
  return { ...r, out };
}

async function keyOf(node: string): Promise<string> {
  return keyHex((await readKeyFile(join(dir, node, "node.key")))!.publicKey);
}

/** The monitoring port a seed's nats-server was given (its config file, on the seed's loopback). */
async function monitorPort(node: string): Promise<number> {
  const conf = await readFile(join(dir, node, NATS_DATA_DIR, NATS_CONFIG_FILE), "utf8");
  const m = /^http: "127\.0\.0\.1:(\d+)"$/m.exec(conf);
  if (m === null) throw new Error(`no monitoring port in ${node}'s nats-server config`);
  return Number(m[1]);
}

describe("two ring-0 seeds in separate namespaces cluster their nats-servers", () => {
  const NODES = ["a", "b", "a1", "b1"] as const;
  type Node = (typeof NODES)[number];
  let net: NetnsNetwork;
  const logs = new Map<Node, string[]>();
  const keys = new Map<Node, string>();
  const nodeOf = (id: string): Node => {
    const found = NODES.find((n) => keys.get(n) === id);
    if (found === undefined) throw new Error(`an answer from ${id}, not one of ours`);
    return found;
  };
  const logsOf = (node: Node) => logs.get(node)?.join("").slice(-4_000) ?? "";

  /** ringd run to completion inside `node`'s namespace. */
  const inNs = (node: Node, args: string[]) => procs.run("ringd", args, { prefix: net.prefix(node) });

  /** `ringd start` for `node`, in its namespace, logging at info; resolves once it answers. */
  async function start(node: Node): Promise<void> {
    const log: string[] = [];
    logs.set(node, log);
    await procs.start(join(dir, node), ["--log-level", "info"], {
      prefix: net.prefix(node),
      timeoutMs: wait.timeoutMs,
      onStderr: (chunk) => log.push(chunk),
    });
  }

  async function joinNode(node: Node, via: Node, ring: 0 | 1, tier: string): Promise<void> {
    const scope = ring === 1 ? ["--tier", tier] : []; // a token's scope makes the certificate's tiers
    const token = await ctl(["token", "create", "--ring", String(ring), ...scope, "--ttl", "10m"], via);
    expect(token.code, token.stderr).toBe(0);
    const joined = await inNs(node, [
      "join",
      token.stdout.trim(),
      "--data-dir",
      join(dir, node),
      "--listen",
      `${net.addr(node)}:${PORT}`,
      "--name",
      node,
      "--transport",
      "nats",
    ]);
    expect(joined.code, joined.stderr).toBe(0);
    expect(joined.stdout).toContain(`as a ring-${ring} node`);
    await start(node);
    keys.set(node, await keyOf(node));
  }

  /** `/routez` of `node`'s nats-server, fetched inside its namespace (monitoring is on its loopback). */
  async function routez(node: Node): Promise<{ num_routes: number; routes: Record<string, unknown>[] }> {
    const url = `http://127.0.0.1:${await monitorPort(node)}/routez`;
    const r = await net.exec(node, process.execPath, [
      "-e",
      `fetch(${JSON.stringify(url)}).then((r) => r.text()).then((t) => process.stdout.write(t))`,
    ]);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout);
  }

  /** Whether `node` holds an established TCP connection to `server`'s nats client port. */
  async function connectedTo(node: Node, server: Node): Promise<boolean> {
    const ss = await net.exec(node, "ss", ["-Htn", "state", "established"]);
    expect(ss.code, ss.stderr).toBe(0);
    return ss.stdout.includes(`${net.addr(server)}:${PORT + NATS_PORT_OFFSET}`);
  }

  beforeAll(async () => {
    net = await makeNetwork({ prefix: "enjc", nodes: NODES, subnetOctet: 232 });
    dir = await mkdtemp(join(tmpdir(), "enjc-cluster-"));
    const init = await inNs("a", [
      "init",
      "--data-dir",
      join(dir, "a"),
      "--listen",
      `${net.addr("a")}:${PORT}`,
      "--name",
      "a",
      "--transport",
      "nats",
    ]);
    expect(init.code, init.stderr).toBe(0);
    await start("a");
    keys.set("a", await keyOf("a"));
    await joinNode("b", "a", 0, "");
    await joinNode("a1", "a", 1, "left");
    await joinNode("b1", "b", 1, "right");
  }, 300_000);

  afterAll(async () => {
    await procs.stopAll();
    await net?.remove(); // and whatever still runs in the namespaces, e.g. a nats-server
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  }, 120_000);

  it("each ring-1 node is on its own seed's server, and each seed runs one", async () => {
    await eventually(async () => {
      expect(await connectedTo("a1", "a")).toBe(true);
      expect(await connectedTo("b1", "b")).toBe(true);
      expect(await connectedTo("b1", "a")).toBe(false);
    }, wait);
    for (const seed of ["a", "b"] as const) {
      const conf = await readFile(join(dir, seed, NATS_DATA_DIR, NATS_CONFIG_FILE), "utf8");
      expect(conf).toContain(`listen: "${net.addr(seed)}:${PORT + NATS_PORT_OFFSET}"`);
      expect(conf).toContain(`listen: "${net.addr(seed)}:${PORT + 3}"`); // routes
    }
  });

  it("the two servers route to each other over TLS, each having learned the other from its signed announcement", async () => {
    await eventually(async () => {
      const [ra, rb] = [await routez("a"), await routez("b")];
      expect(ra.num_routes, logsOf("a")).toBe(1);
      expect(rb.num_routes, logsOf("b")).toBe(1);
      expect(ra.routes[0]!.ip).toBe(net.addr("b"));
      expect(rb.routes[0]!.ip).toBe(net.addr("a"));
    }, wait);
    // Each seed's route book names the other seed's key, route URL and certificate.
    for (const [seed, other] of [
      ["a", "b"],
      ["b", "a"],
    ] as const) {
      const book = JSON.parse(await readFile(join(dir, seed, NATS_DATA_DIR, NATS_ROUTE_PEERS_FILE), "utf8"));
      expect(book.peers.map((p: { key: string }) => p.key)).toEqual([keys.get(other)]);
      expect(book.peers[0].routeUrl).toBe(`nats-route://${net.addr(other)}:${PORT + 3}`);
      const otherCert = await readFile(join(dir, other, NATS_DATA_DIR, NATS_CERT_FILE), "utf8");
      expect(book.peers[0].certPem.replace(/\s/g, "")).toBe(otherCert.replace(/\s/g, ""));
    }
  });

  it("ringctl exec through the second seed reaches all four, each answering from its namespace, over the route", async () => {
    const before = (await routez("a")).routes[0]!;
    const r = await execVia("b", ["ip", "netns", "identify"]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.out.missing).toEqual([]);
    expect(r.out.results).toHaveLength(4);
    for (const x of r.out.results) {
      expect(x).toMatchObject({ exitCode: 0, verified: true });
      expect(x.stdout.trim()).toBe(net.ns(nodeOf(x.node)));
    }
    // A node on the first seed's server, reached through the second seed, whose own ring-1 node
    // sits on the second server: frames crossed the route both ways.
    const left = await execVia("b", ["true"], ["--tier", "left"]);
    expect(left.code, left.stdout + left.stderr).toBe(0);
    expect(left.out.results.map((x) => nodeOf(x.node))).toEqual(["a1"]);
    const after = (await routez("a")).routes[0]!;
    expect(after.in_msgs as number).toBeGreaterThan(before.in_msgs as number);
    expect(after.out_msgs as number).toBeGreaterThan(before.out_msgs as number);
  });

  it("kill -9 of the first seed's machine: the second seed's side keeps working; restarted, the cluster re-forms", async () => {
    await net.killAll("a"); // ringd and its nats-server: nothing is left in the namespace
    await eventually(async () => {
      const r = await execVia("b", ["true"]);
      expect(r.code, r.stdout + r.stderr).toBe(3); // a and a1 are missing ...
      expect(r.out.results.map((x) => nodeOf(x.node)).sort()).toEqual(["b", "b1"]); // ... b's side answers
      expect(r.out.missing.map((m) => nodeOf(m.id)).sort()).toEqual(["a", "a1"]);
    }, wait);
    expect((await routez("b")).num_routes).toBe(0);

    await start("a"); // no token, no flags: everything is in its data dir, its route book included
    await eventually(async () => {
      expect((await routez("a")).num_routes, logsOf("a")).toBe(1);
      expect((await routez("b")).num_routes).toBe(1);
    }, wait);
    await eventually(async () => {
      const r = await execVia("b", ["true"]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.out.results).toHaveLength(4);
    }, wait);
    const viaA = await execVia("a", ["true"]);
    expect(viaA.code, viaA.stdout + viaA.stderr).toBe(0);
    expect(viaA.out.results).toHaveLength(4);
  });

  it("revoking the second seed takes its route out of the first seed's server, for good", async () => {
    const revoked = await ctl(["revoke", keys.get("b")!, "--reason", "test"], "a");
    expect(revoked.code, revoked.stderr).toBe(0);
    await eventually(async () => {
      expect((await routez("a")).num_routes, logsOf("a")).toBe(0);
      const book = JSON.parse(await readFile(join(dir, "a", NATS_DATA_DIR, NATS_ROUTE_PEERS_FILE), "utf8"));
      expect(book.peers).toEqual([]);
      expect(book.revokedCertSha256).toHaveLength(1);
    }, wait);
    // b keeps dialing; a's server keeps refusing it (the route stays down across several retries).
    await new Promise((r) => setTimeout(r, 3_000));
    expect((await routez("a")).num_routes).toBe(0);
    const r = await execVia("a", ["true"]);
    expect(r.out.results.map((x) => nodeOf(x.node)).sort()).toEqual(["a", "a1"]);
  });
});

/**
 * The --nats-url nodes run on loopback, beside the test's nats-server: the seed on this port, the
 * joined node on + 5, each with its block of 5 (a ring-1 node binds + 4 too). Below the ephemeral
 * ports (32768+), where no outgoing connection can take one, in a stretch no other integration
 * file uses.
 */
const NATS_URL_PORT = 32_400 + 10 * Math.floor(Math.random() * 30);

describe("--nats-url: ringd uses an existing nats-server and runs none of its own", () => {
  let server: NatsServer | undefined;
  const run = (args: string[]) => procs.run("ringd", args);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "enjc-natsurl-"));
  });

  afterAll(async () => {
    await procs.stopAll();
    await server?.stop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it("a seed and a joined node meet through the test's nats-server, which admits their nkeys", async () => {
    const seedPort = NATS_URL_PORT;
    const init = await run([
      "init",
      "--json",
      "--data-dir",
      join(dir, "seed"),
      "--listen",
      `127.0.0.1:${seedPort}`,
      "--transport",
      "nats",
    ]);
    expect(init.code, init.stderr).toBe(0);
    const meshId = JSON.parse(init.stdout).meshId as string;
    const seedKey = (await readKeyFile(join(dir, "seed", "node.key")))!.publicKey;
    // The operator's cluster: its own certificate, the seed's nkey admitted, members' subjects only.
    server = await startNatsServer({
      dataDir: join(dir, "existing-nats"),
      allowedKeys: [seedKey],
      permissions: natsMemberPermissions(natsMeshToken(meshId)),
    });
    const caFile = join(dir, "existing-nats", NATS_CERT_FILE);
    const natsFlags = ["--nats-url", server.url, "--nats-ca-file", caFile];
    await procs.start(join(dir, "seed"), ["--log-level", "warn", ...natsFlags], wait);

    const token = await ctl(["token", "create", "--ring", "1", "--ttl", "10m"], "seed");
    expect(token.code, token.stderr).toBe(0);
    const n1Port = NATS_URL_PORT + 5;
    const joined = await run([
      "join",
      token.stdout.trim(),
      "--data-dir",
      join(dir, "n1"),
      "--listen",
      `127.0.0.1:${n1Port}`,
      "--transport",
      "nats",
    ]);
    expect(joined.code, joined.stderr).toBe(0);
    // Without --nats-url the joined node has nowhere to go: its issuer handed out no server of its own.
    const lost = await run(["start", "--data-dir", join(dir, "n1"), "--log-level", "silent"]);
    expect(lost.code).not.toBe(0);
    expect(lost.stderr).toContain("--nats-url");
    const n1Key = (await readKeyFile(join(dir, "n1", "node.key")))!.publicKey;
    await server.reload([seedKey, n1Key]); // the operator admits the new node's nkey
    await procs.start(join(dir, "n1"), ["--log-level", "warn", ...natsFlags], wait);

    await eventually(async () => {
      const r = await execVia("seed", ["echo", "hi"], [], "seed");
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.out.results.map((x) => x.node).sort()).toEqual([keyHex(seedKey), keyHex(n1Key)].sort());
    }, wait);
    // Both are clients of the test's server, and neither started a nats-server of its own.
    const connz = (await (await fetch(`http://127.0.0.1:${server.monitorPort}/connz`)).json()) as {
      num_connections: number;
    };
    expect(connz.num_connections).toBe(2);
    for (const node of ["seed", "n1"]) {
      await expect(stat(join(dir, node, NATS_DATA_DIR))).rejects.toMatchObject({ code: "ENOENT" });
    }
  });
});
