/**
 * The mesh across network namespaces: a ring-0 seed and two joined nodes, each `ringd` running in
 * its own namespace (`ip netns exec`) with its own address on a private bridge — so every byte
 * between them crosses a veth and the bridge, and no node can reach another through loopback.
 * Shows, on ZeroMQ and on NATS: `ringctl nodes` lists all three alive at their namespace
 * addresses (as the seed and as each node sees it), and `ringctl exec` reaches all three with each
 * answer coming from the namespace the node runs in. On NATS also: the joined nodes reach the
 * seed's nats-server at the address the issuer handed out, across the bridge.
 *
 * Network (test/support/netns.ts): a dedicated namespace holds the bridge; one veth pair per node
 * links it to the node's namespace. Nothing is added to the root namespace, and the addresses
 * (10.231.N.0/24) exist only inside these namespaces, with no route anywhere else. Names carry a
 * random suffix so concurrent runs do not collide; afterAll kills every process in the namespaces
 * and deletes them all (which takes the veths and the bridge with them), pass or fail. ringd and
 * ringctl run as scripts/ringd-process.ts runs them, ringd behind `ip netns exec`. Needs root and
 * `ip` (iproute2): when a namespace cannot be made, the tests fail with the command's stderr
 * rather than being skipped.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readKeyFile } from "../../agent/store/key-file.ts";
import { defaultNatsAddress } from "../../agent/transport/nats.ts";
import { type Identity, keyHex } from "../../protocol/index.ts";
import { type Ran, RingdProcesses } from "../../scripts/ringd-process.ts";
import { eventually } from "../support/eventually.ts";
import { ip, makeNetwork, type NetnsNetwork } from "../support/netns.ts";

const NODES = ["seed", "n1", "n2"] as const;
type Node = (typeof NODES)[number];
/** Each namespace has its own ports, so fixed ones cannot collide with anything else on the host. */
const PORT = { zeromq: 7470, nats: 7570 } as const;
const NATS_PORT_OFFSET = 2;
const wait = { timeoutMs: 60_000, intervalMs: 250 };

const procs = new RingdProcesses();
console.info(`ringd and ringctl run from ${procs.runner} (${procs.reason})`);
let net: NetnsNetwork;
let dir: string;
const ns = (node: Node) => net.ns(node);
const addr = (node: Node) => net.addr(node);

/** ringd run to completion inside `node`'s namespace. */
const ringdIn = (node: Node, args: string[]) => procs.run("ringd", args, { prefix: net.prefix(node) });

/** `ringd start` for `node`, in its namespace, in the background; resolves once it answers. */
async function startDaemon(node: Node): Promise<void> {
  await procs.start(join(dir, node), ["--log-level", "warn"], { prefix: net.prefix(node), ...wait });
}

/** ringctl from the root namespace, through `node`'s control socket (a UNIX socket in its data dir). */
const ctl = (args: string[], node: Node = "seed"): Promise<Ran> => procs.ctl(args, join(dir, node));

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

beforeAll(async () => {
  net = await makeNetwork({ prefix: "enj", nodes: NODES, subnetOctet: 231 });
  // The namespaces see only their own subnet: a node's sole way to a peer is across the bridge.
  for (const node of NODES) {
    const routes = await ip("-n", ns(node), "-4", "route", "show");
    expect(routes.trim()).toBe(`${net.subnet}.0/24 dev eth0 proto kernel scope link src ${addr(node)}`);
  }
}, 60_000);

afterAll(async () => {
  await procs.stopAll();
  await net?.remove();
}, 60_000);

for (const transport of ["zeromq", "nats"] as const) {
  describe(`a seed and two nodes in separate network namespaces, over ${transport}`, () => {
    const port = PORT[transport];
    const keys = new Map<Node, Identity>();

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), `enjin-netns-${transport}-`));
      const init = await ringdIn("seed", [
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
      await startDaemon("seed");
      const token = await ctl(["token", "create", "--ring", "1", "--uses", "2", "--ttl", "10m"]);
      expect(token.code, token.stderr).toBe(0);
      for (const node of ["n1", "n2"] as const) {
        const joined = await ringdIn(node, [
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
        await startDaemon(node);
      }
      for (const node of NODES) keys.set(node, (await readKeyFile(join(dir, node, "node.key")))!);
    }, 180_000);

    afterAll(async () => {
      await procs.stopAll();
      for (const node of NODES) await net.killAll(node); // e.g. an orphaned nats-server
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
            const ss = await net.exec(node, "ss", ["-Htn", "state", "established"]);
            expect(ss.code, ss.stderr).toBe(0);
            expect(ss.stdout, `${node}'s connections`).toMatch(
              new RegExp(`${addr(node).replaceAll(".", "\\.")}:\\d+\\s+${server.replaceAll(".", "\\.")}`),
            );
          }, wait);
        }
      });
  });
}
