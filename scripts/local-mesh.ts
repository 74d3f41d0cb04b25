/**
 * `npm run mesh`: boot a real local mesh and use it, then clean up. Every node is a separate
 * `ringd` process with its own key, its LevelDB state and its CURVE-encrypted ZeroMQ sockets on
 * 127.0.0.1; every step is the real `ringctl`:
 *
 *   ringd init (a ring-0 seed) → ringd start → ringctl token create --ring 1 --uses N
 *   → N × ringd join TOKEN --start → ringctl nodes → ringctl exec -- uname -a
 *
 * Options: --nodes N (default 3), --transport zeromq|nats (default zeromq; with nats the seed runs
 * Debian's nats-server as its child), --keep (leave the mesh running and print how to reach it),
 * --json (one JSON summary on stdout). Exit 0 when every node joined and answered the command.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { RingdProcesses } from "./ringd-process.ts";

const { values } = parseArgs({
  options: {
    nodes: { type: "string", default: "3" },
    transport: { type: "string", default: "zeromq" },
    keep: { type: "boolean", default: false },
    json: { type: "boolean", default: false },
    help: { type: "boolean", default: false },
  },
});
if (values.help) {
  process.stdout.write(
    "usage: npm run mesh -- [--nodes N] [--transport zeromq|nats] [--keep] [--json]\n\n" +
      "Boot a ring-0 seed and N joined ring-1 nodes as real ringd processes on 127.0.0.1, list them,\n" +
      "run a signed command on all of them, print the answers, and stop everything (unless --keep).\n",
  );
  process.exit(0);
}
const count = Number(values.nodes);
if (!Number.isInteger(count) || count < 1 || count > 50) {
  process.stderr.write(`--nodes must be a whole number from 1 to 50, not "${values.nodes}"\n`);
  process.exit(2);
}

const transport = values.transport;
if (transport !== "zeromq" && transport !== "nats") {
  process.stderr.write(`--transport must be zeromq or nats, not "${transport}"\n`);
  process.exit(2);
}
const say = (line: string) => process.stderr.write(`${line}\n`);
const dir = await mkdtemp(join(tmpdir(), "enjin-local-"));
const basePort = 21_000 + Math.floor(Math.random() * 20_000);
// `npm run mesh` builds first, so this runs the built JavaScript; run directly with tsx and no
// fresh build, it runs the sources.
const procs = new RingdProcesses();
const run = (bin: "ringd" | "ringctl", args: string[]) => procs.run(bin, args);
// Warnings go straight to this terminal (and still do with --keep, after this script has exited).
const daemon = (args: string[]) =>
  procs.spawn("ringd", [...args, "--log-level", "warn"], { stderr: "inherit" });

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const got = await probe();
    if (got !== undefined) return got;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}`);
}

let ok = false;
const summary: Record<string, unknown> = { dir };
say(
  `ringd runs from ${procs.runner === "dist" ? "dist/ (built JavaScript)" : `the sources under tsx (${procs.reason})`}`,
);
try {
  const seed = join(dir, "seed");
  const init = await run("ringd", [
    "init",
    "--data-dir",
    seed,
    "--listen",
    `127.0.0.1:${basePort}`,
    "--name",
    "seed",
    "--transport",
    transport,
    "--json",
  ]);
  if (init.code !== 0) throw new Error(`ringd init failed: ${init.stderr}`);
  const made = JSON.parse(init.stdout) as { meshId: string };
  say(`1. ringd init: mesh ${made.meshId}, seed in ${seed}`);
  await procs.start(seed, ["--log-level", "warn"], { stderr: "inherit", timeoutMs: 60_000 });
  say("2. ringd start: the seed is up");
  const token = await procs.ctl(
    ["token", "create", "--ring", "1", "--tier", "web", "--uses", String(count), "--ttl", "10m"],
    seed,
  );
  if (token.code !== 0) throw new Error(`ringctl token create failed: ${token.stderr}`);
  say(`3. ringctl token create --ring 1 --tier web --uses ${count}: ${token.stdout.trim().slice(0, 40)}…`);
  for (let i = 1; i <= count; i++) {
    daemon([
      "join",
      token.stdout.trim(),
      "--data-dir",
      join(dir, `node${i}`),
      "--listen",
      `127.0.0.1:${basePort + 10 * i}`,
      "--name",
      `node${i}`,
      "--transport",
      transport,
      "--start",
    ]);
  }
  const nodes = await until("every node to join", async () => {
    const r = await procs.ctl(["nodes", "--json"], seed);
    if (r.code !== 0) return undefined;
    const listed = JSON.parse(r.stdout).nodes as { state: string }[];
    return listed.filter((n) => n.state === "alive").length === count + 1 ? listed : undefined;
  });
  summary.nodes = nodes.length;
  say(`4. ringd join TOKEN --start × ${count}: ringctl nodes on the seed shows`);
  say((await procs.ctl(["nodes"], seed)).stdout.trimEnd().replace(/^/gm, "     "));
  const exec = await procs.ctl(["exec", "--json", "--timeout", "20s", "--", "uname", "-sr"], seed);
  const out = JSON.parse(exec.stdout || "{}") as {
    results?: { fingerprint: string; exitCode: number; stdout: string; verified: boolean }[];
    missing?: unknown[];
  };
  const results = out.results ?? [];
  summary.answers = results.length;
  summary.missing = out.missing?.length ?? count + 1;
  say("5. ringctl exec -- uname -sr: answers, each signed by its node and verified by ringctl:");
  for (const r of results)
    say(
      `     ${r.fingerprint.slice(8, 28)}  exit ${r.exitCode}  ${r.stdout.trim()}  ${r.verified ? "verified" : "NOT VERIFIED"}`,
    );
  ok =
    exec.code === 0 && results.length === count + 1 && results.every((r) => r.verified && r.exitCode === 0);
  if (values.keep) {
    say(`\nthe mesh keeps running; try: ${procs.commandLine("ringctl")} nodes --data-dir ${seed}`);
    say(`stop it with: kill ${[...procs.pids()].join(" ")}`);
  }
} catch (err) {
  say(`FAILED: ${(err as Error).message}`);
} finally {
  if (!values.keep) {
    await procs.stopAll();
    await rm(dir, { recursive: true, force: true });
    say("6. stopped every ringd (SIGTERM: each left the mesh) and removed the state");
  }
}
summary.ok = ok;
if (values.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
else
  process.stdout.write(
    `${ok ? "OK" : "FAILED"}: ${count} node(s) joined a seed and answered a signed command\n`,
  );
process.exit(ok ? 0 : 1);
