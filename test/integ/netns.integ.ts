/**
 * The mesh across network namespaces: a ring-0 seed and two joined nodes, each `ringd` running in
 * its own namespace (`ip netns exec`) with its own address on a private bridge — so every byte
 * between them crosses a veth and the bridge, and no node can reach another through loopback.
 * Shows, on ZeroMQ and on NATS: `ringctl nodes` lists all three alive at their namespace
 * addresses (as the seed and as each node sees it), and `ringctl exec` reaches all three with each
 * answer coming from the namespace the node runs in. On NATS also: the joined nodes reach the
 * seed's nats-server at the address the issuer handed out, across the bridge.
 *
 * Network: a dedicated namespace holds the bridge; one veth pair per node links it to the node's
 * namespace. Nothing is added to the root namespace, and the addresses (10.231.N.0/24) exist only
 * inside these namespaces, with no route anywhere else. Names carry a random suffix so concurrent
 * runs do not collide; afterAll kills every process in the namespaces and deletes them all (which
 * takes the veths and the bridge with them), pass or fail. Needs root and `ip` (iproute2): when a
 * namespace cannot be made, the tests fail with the command's stderr rather than being skipped.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readKeyFile } from "../../agent/store/key-file.ts";
import { defaultNatsAddress } from "../../agent/transport/nats.ts";
import { type Identity, keyHex } from "../../protocol/index.ts";
import { eventually } from "../support/eventually.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const RAND = randomBytes(3).toString("hex");
/** Namespace of the bridge; the nodes' namespaces are named after them. */
const BRIDGE_NS = `enj-${RAND}-br`;
const BRIDGE = `enjbr${RAND}`;
const SUBNET = `10.231.${randomBytes(1)[0]}`;
const NODES = ["seed", "n1", "n2"] as const;
type Node = (typeof NODES)[number];
const ns = (node: Node) => `enj-${RAND}-${node}`;
const addr = (node: Node) => `${SUBNET}.${NODES.indexOf(node) + 1}`;
/** Each namespace has its own ports, so fixed ones cannot collide with anything else on the host. */
const PORT = { zeromq: 7470, nats: 7570 } as const;
const NATS_PORT_OFFSET = 2;
const wait = { timeoutMs: 60_000, intervalMs: 250 };

interface Ran {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function sh(file: string, args: string[], timeout = 120_000): Promise<Ran> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("ENJIN_")));
  return new Promise((resolve) => {
    execFile(file, args, { cwd: ROOT, env, timeout }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === "number" ? err.code : -1;
      resolve({ code, stdout, stderr: stderr || (err?.message ?? "") });
    });
  });
}

/** `ip ARGS`, throwing with the command and its stderr when it fails. */
async function ip(...args: string[]): Promise<string> {
  const r = await sh("ip", args, 30_000);
  if (r.code !== 0) throw new Error(`ip ${args.join(" ")} failed (exit ${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

/** node's arguments to run ringd or ringctl from this checkout. */
const binArgs = (bin: "ringd" | "ringctl", args: string[]) => [
  "--import",
  "tsx",
  join(ROOT, "ctl", "bin", `${bin}.ts`),
  ...args,
];

/** ringd or ringctl run to completion inside `node`'s namespace. */
const inNs = (node: Node, bin: "ringd" | "ringctl", args: string[]) =>
  sh("ip", ["netns", "exec", ns(node), process.execPath, ...binArgs(bin, args)]);

/** ringctl from the root namespace, through `node`'s control socket (a UNIX socket in its data dir). */
function ctl(args: string[], node: Node = "seed"): Promise<Ran> {
  const dash = args.indexOf("--");
  const head = dash === -1 ? args : args.slice(0, dash);
  const tail = dash === -1 ? [] : args.slice(dash);
  return sh(process.execPath, binArgs("ringctl", [...head, "--data-dir", join(dir, node), ...tail]));
}

interface Listed {
  readonly id: string;
  readonly addr: string;
  readonly state: string;
  readonly self: boolean;
}

async function nodesSeenBy(node: Node): Promise<Listed[]> {
  const r = await ctl(["nodes", "--json"], node);
  if (r.code !== 0) throw new Error(`ringctl nodes (${node}): ${r.stderr}`);
  return JSON.parse(r.stdout).nodes;
}

interface ExecOut {
  readonly results: { node: string; exitCode: number; stdout: string; stderr: string; verified: boolean }[];
  readonly missing: unknown[];
}

async function execAll(command: string[]): Promise<ExecOut> {
  const r = await ctl(["exec", "--json", "--timeout", "20s", "--", ...command]);
  expect(r.code, r.stdout + r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

let dir: string;
const daemons = new Map<Node, { child: ChildProcess; log: string[] }>();

/** `ringd start` for `node`, in its namespace, in the background (ip netns exec execs in place). */
function startDaemon(node: Node): void {
  const child = spawn(
    "ip",
    [
      "netns",
      "exec",
      ns(node),
      process.execPath,
      ...binArgs("ringd", ["start", "--data-dir", join(dir, node), "--log-level", "warn"]),
    ],
    { cwd: ROOT, stdio: ["ignore", "ignore", "pipe"] },
  );
  const log: string[] = [];
  child.stderr?.on("data", (chunk: Buffer) => log.push(chunk.toString()));
  daemons.set(node, { child, log });
}

async function stopDaemons(): Promise<void> {
  await Promise.all(
    [...daemons.values()].map(async ({ child }) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM"); // graceful: a NATS seed stops its nats-server with it
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    }),
  );
  daemons.clear();
}

/** SIGKILL whatever still runs in our namespaces (e.g. an orphaned nats-server), and wait for it. */
async function killEverythingIn(namespaces: string[]): Promise<void> {
  for (let attempt = 0; attempt < 50; attempt++) {
    let left = 0;
    for (const name of namespaces) {
      const r = await sh("ip", ["netns", "pids", name], 10_000);
      for (const pid of r.stdout.split(/\s+/).filter(Boolean).map(Number)) {
        left++;
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // gone already
        }
      }
    }
    if (left === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

const allNamespaces = () => [...NODES.map(ns), BRIDGE_NS];

async function ourNamespaces(): Promise<string[]> {
  const listed = await ip("netns", "list");
  return listed
    .split("\n")
    .map((line) => line.split(" ")[0]!)
    .filter((name) => name.startsWith(`enj-${RAND}-`));
}

/** The bridge in its own namespace, and a veth from it to each node's namespace, all up. */
async function makeNetwork(): Promise<void> {
  for (const name of allNamespaces()) await ip("netns", "add", name);
  await ip("-n", BRIDGE_NS, "link", "add", "name", BRIDGE, "type", "bridge");
  await ip("-n", BRIDGE_NS, "link", "set", "dev", BRIDGE, "up");
  for (const node of NODES) {
    const outer = `enj${RAND}-${node}`; // the bridge's end, at most 15 bytes
    await ip(
      "-n",
      BRIDGE_NS,
      "link",
      "add",
      "name",
      outer,
      "type",
      "veth",
      "peer",
      "name",
      "eth0",
      "netns",
      ns(node),
    );
    await ip("-n", BRIDGE_NS, "link", "set", "dev", outer, "master", BRIDGE);
    await ip("-n", BRIDGE_NS, "link", "set", "dev", outer, "up");
    await ip("-n", ns(node), "addr", "add", `${addr(node)}/24`, "dev", "eth0");
    await ip("-n", ns(node), "link", "set", "dev", "eth0", "up");
    await ip("-n", ns(node), "link", "set", "dev", "lo", "up");
  }
}

async function removeNetwork(): Promise<void> {
  await killEverythingIn(allNamespaces());
  const errors: string[] = [];
  const existing = await ourNamespaces();
  // Explicitly, though deleting the namespaces would take them along: the veths, then the bridge.
  if (existing.includes(BRIDGE_NS)) {
    for (const node of NODES)
      await ip("-n", BRIDGE_NS, "link", "del", "dev", `enj${RAND}-${node}`).catch(() => undefined);
    await ip("-n", BRIDGE_NS, "link", "del", "dev", BRIDGE).catch(() => undefined);
  }
  for (const name of existing) await ip("netns", "del", name).catch((err) => errors.push(String(err)));
  const left = await ourNamespaces();
  if (errors.length > 0 || left.length > 0)
    throw new Error(`could not remove namespaces ${left.join(", ")}: ${errors.join("; ")}`);
}

beforeAll(async () => {
  try {
    await makeNetwork();
  } catch (err) {
    await removeNetwork().catch(() => undefined);
    throw err;
  }
  // The namespaces see only their own subnet: a node's sole way to a peer is across the bridge.
  for (const node of NODES) {
    const routes = await ip("-n", ns(node), "-4", "route", "show");
    expect(routes.trim()).toBe(`${SUBNET}.0/24 dev eth0 proto kernel scope link src ${addr(node)}`);
  }
}, 60_000);

afterAll(async () => {
  await stopDaemons();
  await removeNetwork();
}, 60_000);

for (const transport of ["zeromq", "nats"] as const) {
  describe(`a seed and two nodes in separate network namespaces, over ${transport}`, () => {
    const port = PORT[transport];
    const keys = new Map<Node, Identity>();

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), `enjin-netns-${transport}-`));
      const init = await inNs("seed", "ringd", [
        "init",
        "--data-dir",
        join(dir, "seed"),
        "--listen",
        `${addr("seed")}:${port}`,
        "--name",
        "seed",
        "--transport",
        transport,
      ]);
      expect(init.code, init.stderr).toBe(0);
      startDaemon("seed");
      await eventually(async () => {
        const r = await ctl(["status"]);
        expect(r.code, `${r.stderr}\nringd: ${daemons.get("seed")?.log.join("")}`).toBe(0);
      }, wait);
      const token = await ctl(["token", "create", "--ring", "1", "--uses", "2", "--ttl", "10m"]);
      expect(token.code, token.stderr).toBe(0);
      for (const node of ["n1", "n2"] as const) {
        const joined = await inNs(node, "ringd", [
          "join",
          token.stdout.trim(),
          "--data-dir",
          join(dir, node),
          "--listen",
          `${addr(node)}:${port}`,
          "--name",
          node,
          "--transport",
          transport,
        ]);
        expect(joined.code, joined.stderr).toBe(0);
        startDaemon(node);
      }
      for (const node of NODES) keys.set(node, (await readKeyFile(join(dir, node, "node.key")))!);
    }, 180_000);

    afterAll(async () => {
      await stopDaemons();
      await killEverythingIn(NODES.map(ns));
      if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    }, 60_000);

    /**
     * Where ringctl nodes says a node is: on ZeroMQ its endpoint in its namespace (the listed
     * `tcp://HOST:PORT/<curve key>` without the key); on NATS its subject name (where NATS nodes
     * are is shown by their connections to the server, below).
     */
    const peerAddr = (node: Node) =>
      transport === "zeromq" ? `tcp://${addr(node)}:${port}` : defaultNatsAddress(keys.get(node)!.publicKey);
    const listedAddr = (listed: string) =>
      transport === "zeromq" ? listed.replace(/\/[0-9a-f]{64}$/, "") : listed;
    const nodeOf = (id: string): Node => {
      const found = NODES.find((n) => keyHex(keys.get(n)!.publicKey) === id);
      if (found === undefined) throw new Error(`an answer from ${id}, not one of ours`);
      return found;
    };

    it("ringctl nodes lists all three alive at their own addresses, as the seed and each node see it", async () => {
      for (const viewer of NODES) {
        await eventually(async () => {
          const nodes = await nodesSeenBy(viewer);
          const seen = nodes
            .filter((n) => n.state === "alive")
            .map((n) => [nodeOf(n.id), listedAddr(n.addr), n.self]);
          expect(seen.sort(), `as ${viewer} sees it`).toEqual(
            NODES.map((n) => [n, peerAddr(n), n === viewer]).sort(),
          );
        }, wait);
      }
    });

    it("exec reaches all three, and each answers from its own namespace", async () => {
      const host = await execAll(["hostname"]);
      expect(host.missing).toEqual([]);
      expect(host.results).toHaveLength(3);
      // Namespaces share the host name (no UTS namespace): this shows reach, not place.
      for (const r of host.results)
        expect(r).toMatchObject({ exitCode: 0, stdout: `${hostname()}\n`, verified: true });

      const addrs = await execAll(["ip", "-4", "-o", "addr", "show"]);
      expect(addrs.missing).toEqual([]);
      expect(addrs.results).toHaveLength(3);
      expect(new Set(addrs.results.map((r) => nodeOf(r.node)))).toEqual(new Set(NODES));
      for (const r of addrs.results) {
        const node = nodeOf(r.node);
        expect(r).toMatchObject({ exitCode: 0, verified: true });
        // Its own address and loopback, and nothing else: not the host's, not the other nodes'.
        const inet = [...r.stdout.matchAll(/ inet (\S+)/g)].map((m) => m[1]);
        expect(inet.sort(), r.stdout).toEqual([`${addr(node)}/24`, "127.0.0.1/8"].sort());
      }

      const where = await execAll(["ip", "netns", "identify"]);
      expect(where.results).toHaveLength(3);
      for (const r of where.results) expect(r.stdout.trim()).toBe(ns(nodeOf(r.node)));
    });

    if (transport === "nats")
      it("the joined nodes reach the seed's nats-server at its namespace address, across the bridge", async () => {
        const server = `${addr("seed")}:${port + NATS_PORT_OFFSET}`;
        const listening = await ip("-n", ns("seed"), "-4", "-o", "addr", "show"); // sanity: seed has it
        expect(listening).toContain(addr("seed"));
        for (const node of ["n1", "n2"] as const) {
          await eventually(async () => {
            const ss = await sh("ip", ["netns", "exec", ns(node), "ss", "-Htn", "state", "established"]);
            expect(ss.code, ss.stderr).toBe(0);
            expect(ss.stdout, `${node}'s connections`).toMatch(
              new RegExp(`${addr(node).replaceAll(".", "\\.")}:\\d+\\s+${server.replaceAll(".", "\\.")}`),
            );
          }, wait);
        }
      });
  });
}
