/**
 * ringd's and ringctl's mesh-facing options through the real binaries, on a seed and one joined
 * node.
 *
 * `ringd init` and `ringd join` remember the settings they were given: the seed, made with a child
 * port range and a children directory, and the node, joined with its own, come back with them from
 * a plain `ringd start --data-dir DIR`, shown by where their supervised children get their ports
 * and directories; a NATS seed's `--nats-url` and `--nats-ca-file` come back in what `ringd config
 * show` (the resolution `start` uses) reports, from the file, and a flag given to `start` still
 * overrides the file.
 *
 * One selector for `ringctl exec` and `ringctl child ...`: `--node` given as the local node's name,
 * a part of a fingerprint as `ringctl nodes` shows it, or a start of a hex key reaches exactly that
 * node on both, and a node nobody knows is a usage error (exit 2) before anything is signed.
 */
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readKeyFile } from "../agent/store/key-file.ts";
import { fingerprint, keyHex } from "../protocol/index.ts";
import { type Ran, RingdProcesses } from "../scripts/ringd-process.ts";
import { eventually } from "../test/support/eventually.ts";

const procs = new RingdProcesses();
// Below the ephemeral ports (32768+), in a stretch no other integration file uses (mesh.integ.ts).
const P = 28_000 + Math.floor(Math.random() * 1_800);
const SEED_CHILD_PORTS = [P + 100, P + 104] as const;
const N1_CHILD_PORTS = [P + 110, P + 114] as const;
const wait = { timeoutMs: 60_000, intervalMs: 50 };

let dir: string;
const dataDir = (node: string) => join(dir, node);
const kidsDir = (node: string) => join(dir, `${node}-kids`);

/** ringctl through the seed's control socket. */
const ctl = (args: string[]): Promise<Ran> => procs.ctl(args, dataDir("seed"));

/** `ringd start --data-dir DIR` and nothing else; resolves once it answers on its control socket. */
async function startPlain(node: string): Promise<void> {
  await procs.start(dataDir(node), [], wait);
}

/** A proc child `name` on the nodes `selector` names; its port, as the node answered. */
async function childPort(name: string, selector: string[]): Promise<number> {
  const r = await ctl([
    "child",
    "create",
    name,
    ...selector,
    "--strategy",
    "proc",
    "--json",
    "--",
    "/bin/sleep",
    "600",
  ]);
  expect(r.code, r.stdout + r.stderr).toBe(0);
  const results = JSON.parse(r.stdout).results as { child: { name: string; port: number } }[];
  expect(results).toHaveLength(1);
  return results[0]!.child.port;
}

function expectOk(r: Ran): void {
  expect({ code: r.code, stderr: r.code === 0 ? "" : r.stderr }).toEqual({ code: 0, stderr: "" });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "enjin-settings-"));
});

afterAll(async () => {
  // Children outlive ringd: remove them while their nodes still run.
  for (const [name, selector] of [
    ["s1", ["--ring", "0"]],
    ["w1", ["--tier", "web"]],
  ] as const)
    await ctl(["child", "remove", name, ...selector, "--timeout", "10s"]);
  await procs.stopAll();
  await rm(dir, { recursive: true, force: true });
});

describe("settings given to init and join come back with a plain ringd start", () => {
  it("a seed made with --child-ports and --children-dir runs its children there", async () => {
    const init = await procs.run("ringd", [
      "init",
      "--data-dir",
      dataDir("seed"),
      "--listen",
      `127.0.0.1:${P}`,
      "--name",
      "seed",
      "--child-ports",
      SEED_CHILD_PORTS.join("-"),
      "--children-dir",
      kidsDir("seed"),
      "--log-level",
      "warn",
      "--json",
    ]);
    expectOk(init);
    expect(JSON.parse(await readFile(JSON.parse(init.stdout).configFile, "utf8"))).toEqual({
      ring: 0,
      listen: `127.0.0.1:${P}`,
      name: "seed",
      childPortRange: SEED_CHILD_PORTS.join("-"),
      childrenDir: kidsDir("seed"),
      logLevel: "warn",
    });
    await startPlain("seed");
    const port = await childPort("s1", ["--ring", "0"]);
    expect(port).toBeGreaterThanOrEqual(SEED_CHILD_PORTS[0]);
    expect(port).toBeLessThanOrEqual(SEED_CHILD_PORTS[1]);
    expect(existsSync(join(kidsDir("seed"), "s1", "dir"))).toBe(true);
  });

  it("a node joined with its own range, directory and tier runs its children there", async () => {
    const token = await ctl(["token", "create", "--ring", "1", "--tier", "web", "--ttl", "10m"]);
    expectOk(token);
    const joined = await procs.run("ringd", [
      "join",
      token.stdout.trim(),
      "--data-dir",
      dataDir("n1"),
      "--listen",
      `127.0.0.1:${P + 10}`,
      "--name",
      "n1",
      "--child-ports",
      N1_CHILD_PORTS.join("-"),
      "--children-dir",
      kidsDir("n1"),
      "--log-level",
      "warn",
    ]);
    expectOk(joined);
    await startPlain("n1");
    // n1 answering on its own socket is not the seed knowing it: wait until the seed sees it alive
    // with its tier, or the selector below matches nobody (a CI run caught exactly that).
    await eventually(async () => {
      const r = await ctl(["nodes", "--json"]);
      const nodes = JSON.parse(r.stdout).nodes as {
        state: string;
        certificate: { tiers: string[] } | null;
      }[];
      expect(nodes.filter((n) => n.state === "alive" && n.certificate?.tiers.includes("web"))).toHaveLength(
        1,
      );
    }, wait);
    const port = await childPort("w1", ["--tier", "web"]);
    expect(port).toBeGreaterThanOrEqual(N1_CHILD_PORTS[0]);
    expect(port).toBeLessThanOrEqual(N1_CHILD_PORTS[1]);
    expect(existsSync(join(kidsDir("n1"), "w1", "dir"))).toBe(true);
  });

  it("a NATS seed's --nats-url and --nats-ca-file come from the file; a flag to start still wins", async () => {
    const ca = join(dir, "nats-ca.pem");
    await writeFile(ca, "not read by init or config show\n");
    const init = await procs.run("ringd", [
      "init",
      "--data-dir",
      dataDir("nseed"),
      "--listen",
      `127.0.0.1:${P + 20}`,
      "--transport",
      "nats",
      "--nats-url",
      "tls://127.0.0.1:4222,tls://127.0.0.2:4222",
      "--nats-ca-file",
      ca,
      "--child-ports",
      "30000-30009",
    ]);
    expectOk(init);
    const shown = await procs.run("ringd", ["config", "show", "--json", "--data-dir", dataDir("nseed")]);
    expectOk(shown);
    const { config, sources } = JSON.parse(shown.stdout);
    expect(config).toMatchObject({
      ring: 0,
      transport: "nats",
      natsUrl: "tls://127.0.0.1:4222,tls://127.0.0.2:4222",
      natsCaFile: ca,
      childPortRange: { firstPort: 30_000, lastPort: 30_009 },
      childrenDir: `${dataDir("nseed")}-children`,
    });
    expect(sources).toMatchObject({
      ring: "file",
      transport: "file",
      natsUrl: "file",
      natsCaFile: "file",
      childPortRange: "file",
      childrenDir: "default",
      logLevel: "default",
    });
    const over = await procs.run("ringd", [
      "config",
      "show",
      "--json",
      "--data-dir",
      dataDir("nseed"),
      "--child-ports",
      "30100-30109",
    ]);
    expectOk(over);
    expect(JSON.parse(over.stdout).config.childPortRange).toEqual({ firstPort: 30_100, lastPort: 30_109 });
    expect(JSON.parse(over.stdout).sources.childPortRange).toBe("flag");
  });
});

describe("one selector for exec and child: --node", () => {
  const keyOf = async (node: string) => (await readKeyFile(join(dataDir(node), "node.key")))!.publicKey;

  /** The nodes that answered `args` (a ringctl command with --json), by name. */
  async function answeredBy(args: string[]): Promise<string[]> {
    const r = await ctl(args);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const keys = await Promise.all(["seed", "n1"].map(async (n) => [n, keyHex(await keyOf(n))]));
    return (JSON.parse(r.stdout).results as { node: string }[]).map(
      (x) => keys.find(([, k]) => k === x.node)?.[0] ?? x.node,
    );
  }

  it("names one node by the local node's name, a fingerprint part, or a start of a hex key", async () => {
    const n1Part = fingerprint(await keyOf("n1")).slice(8, 28); // as ringctl nodes shows it
    const seedStart = keyHex(await keyOf("seed")).slice(0, 10);
    const exec = (node: string) =>
      answeredBy(["exec", "--json", "--node", node, "--timeout", "20s", "--", "true"]);
    expect(await exec("seed")).toEqual(["seed"]);
    expect(await exec(n1Part)).toEqual(["n1"]);
    expect(await exec(seedStart)).toEqual(["seed"]);
    const list = (node: string) =>
      answeredBy(["child", "list", "--json", "--node", node, "--timeout", "20s"]);
    expect(await list(n1Part)).toEqual(["n1"]);
    expect(await list("seed")).toEqual(["seed"]);
  });

  it("refuses a node nobody knows with exit 2, saying where to look, on both", async () => {
    for (const command of [
      ["exec", "--node", "zzzzzzzz", "--", "true"],
      ["child", "list", "--node", "zzzzzzzz"],
    ]) {
      const r = await ctl(command);
      expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 2, stdout: "" });
      expect(r.stderr).toMatch(/--node zzzzzzzz: no node the local ringd knows .*'ringctl nodes'/);
    }
  });
});
