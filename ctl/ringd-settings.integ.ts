/**
 * `ringd init` and `ringd join` remember the settings they were given: a seed made with a child
 * port range and a children directory, and a node joined with its own, come back with them from a
 * plain `ringd start --data-dir DIR` — the real binaries, shown by where their supervised children
 * get their ports and directories; a NATS seed's `--nats-url` and `--nats-ca-file` come back in
 * what `ringd config show` (the resolution `start` uses) reports, from the file, and a flag given
 * to `start` still overrides the file.
 */
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Ran, RingdProcesses } from "../scripts/ringd-process.ts";

const procs = new RingdProcesses();
const P = 21_000 + Math.floor(Math.random() * 18_000);
const SEED_CHILD_PORTS = [P + 100, P + 104] as const;
const N1_CHILD_PORTS = [P + 110, P + 114] as const;
const wait = { timeoutMs: 60_000, intervalMs: 50 };

let dir: string;
const dataDir = (node: string) => join(dir, node);
const kidsDir = (node: string) => join(dir, `${node}-kids`);

/** ringctl through the seed's control socket; --data-dir goes before any `--`. */
function ctl(args: string[]): Promise<Ran> {
  const dash = args.indexOf("--");
  const head = dash === -1 ? args : args.slice(0, dash);
  return procs.run("ringctl", [
    ...head,
    "--data-dir",
    dataDir("seed"),
    ...(dash === -1 ? [] : args.slice(dash)),
  ]);
}

/** `ringd start --data-dir DIR` and nothing else; resolves once it answers on its control socket. */
async function startPlain(node: string): Promise<void> {
  await procs.waitReady(procs.spawn("ringd", ["start", "--data-dir", dataDir(node)]), dataDir(node), wait);
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
