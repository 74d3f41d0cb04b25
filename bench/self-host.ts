/**
 * `npx tsx bench/self-host.ts [--runs N] [--runner auto|dist|tsx]` (as root): self-hosting timings with real processes. A seed
 * (`ringd start`) creates ring-1 ringd children under the unix-user strategy (`node.create` on its
 * control socket, as `ringctl node create` sends it), one per round, and the round measures:
 *
 * - create: the node.create call, from sending it to its answer (the child is created, its account
 *   made, its token minted and written, its process started);
 * - member: from sending node.create until the seed's `nodes` shows the child alive with a
 *   certificate the seed issued (the child ran ringd, joined with the token, and gossip reached the
 *   seed) — the "create to certified member";
 * - respawn: from kill -9 of the ring-1 agent until the supervisor's new process of the child's
 *   user runs (restart policy backoff: 1 s ± 25 % by default, plus the driver's start);
 * - alive: from kill -9 until the restarted agent answers `status` on its control socket;
 * - plain start: beside it, in the same round, `ringd start` of an already-joined ring-1 node run
 *   directly by this script (no supervisor, no user): the floor for the ringd part of "alive".
 *
 * Summary on stderr, one JSON record on stdout. Everything is removed at the end, also on failure.
 */
import { execFileSync } from "node:child_process";
import { chmod, mkdtemp, readFile, rm } from "node:fs/promises";
import { cpus, loadavg, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { processesOfUid } from "../agent/supervise/linux-process.ts";
import { deriveUserName, findAccount } from "../agent/supervise/unix-user-account.ts";
import { controlCall, RingdProcesses } from "../scripts/ringd-process.ts";

const { values } = parseArgs({
  options: { runs: { type: "string", default: "5" }, runner: { type: "string", default: "auto" } },
});
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1 || runs > 12)
  throw new Error(`--runs takes 1..12, not ${values.runs}`);
if (process.getuid?.() !== 0)
  throw new Error("bench/self-host.ts needs root (ring-1 children run as their own users)");
const say = (line: string) => process.stderr.write(`${line}\n`);

if (!["auto", "dist", "tsx"].includes(values.runner)) throw new Error(`--runner takes auto, dist or tsx`);
const procs = new RingdProcesses({ runner: values.runner as "auto" | "dist" | "tsx" });
const uptimeBefore = execFileSync("uptime").toString().trim();
// Each ring-1 child holds two ports of the seed's range (peers on PORT, joins on PORT + 1).
const P = 33_000 + 200 * Math.floor(Math.random() * 25);
const base = await mkdtemp("/tmp/enjin-bench-selfhost-");
await chmod(base, 0o711);
const seedDir = join(base, "seed");
const plainDir = join(base, "plain");
const names: string[] = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A control call to the ringd whose state is in `dataDir`. */
const control = async (dataDir: string, method: string, params: unknown = {}) =>
  (await controlCall(dataDir, method, params, { connectTimeoutMs: 1_000 })) as Record<string, unknown>;

/** Poll `fn` every `everyMs` until it returns true; throws after 60 s. */
async function until(fn: () => Promise<boolean>, everyMs = 5): Promise<void> {
  const deadline = performance.now() + 60_000;
  for (;;) {
    if (await fn().catch(() => false)) return;
    if (performance.now() > deadline) throw new Error("not reached within 60 s");
    await sleep(everyMs);
  }
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  return { n: s.length, minMs: Math.round(s[0]!), p50Ms: Math.round(q(0.5)), maxMs: Math.round(s.at(-1)!) };
};

type NodeRow = { id: string; state: string; certificate: { ring: number; issuer: string } | null };
const rounds: Record<string, number>[] = [];
const seen = new Set<string>();
let seedKey = "";
try {
  const init = await procs.run("ringd", [
    "init",
    "--data-dir",
    seedDir,
    "--listen",
    `127.0.0.1:${P}`,
    "--json",
  ]);
  if (init.code !== 0) throw new Error(`ringd init: ${init.stderr}`);
  seedKey = JSON.parse(init.stdout).nodeKey as string;
  const seed = procs.spawn("ringd", ["start", "--data-dir", seedDir, "--child-ports", `${P + 10}-${P + 39}`]);
  await procs.waitReady(seed, seedDir);
  // The plain ring-1 node: joined once, then started and stopped by hand each round.
  const token = (await control(seedDir, "token.create", { ring: 1, ttlMs: 600_000, uses: 1 }))
    .token as string;
  const joined = await procs.run("ringd", [
    "join",
    token,
    "--data-dir",
    plainDir,
    "--listen",
    `127.0.0.1:${P + 5}`,
  ]);
  if (joined.code !== 0) throw new Error(`ringd join: ${joined.stderr}`);

  for (let i = 0; i < runs; i++) {
    const name = `bench-${process.pid}-${i}`;
    names.push(name);
    const round: Record<string, number> = {};
    for (const n of (await control(seedDir, "nodes")).nodes as NodeRow[]) seen.add(n.id);
    const t0 = performance.now();
    const made = await control(seedDir, "node.create", {
      name,
      strategy: "unix-user",
      childPorts: { firstPort: P + 100 + 3 * i, lastPort: P + 102 + 3 * i },
    });
    round.createMs = performance.now() - t0;
    const pid = (made.child as { pid: number }).pid;
    const isNew = (n: NodeRow) => n.certificate?.ring === 1 && n.state === "alive" && !seen.has(n.id);
    let key = "";
    await until(async () => {
      const found = ((await control(seedDir, "nodes")).nodes as NodeRow[]).find(isNew);
      if (found === undefined || found.certificate?.issuer !== seedKey) return false;
      key = found.id;
      return true;
    });
    seen.add(key);
    round.memberMs = performance.now() - t0;
    const uid = (await findAccount(deriveUserName("enjin-", name))).user!.uid;
    const childState = join(`${seedDir}-children`, name, "dir", "state");
    let before = 0; // its control socket comes up after it is a member
    await until(async () => {
      before = Number((await control(childState, "status")).startedMs);
      return true;
    });
    await sleep(300);
    const t1 = performance.now();
    const old = new Set(await processesOfUid(uid)); // ringd, and under tsx its esbuild service
    process.kill(pid, "SIGKILL");
    const isRingd = async (p: number) =>
      (await readFile(`/proc/${p}/cmdline`, "utf8")).includes("/ctl/bin/ringd.");
    await until(async () => {
      for (const p of await processesOfUid(uid))
        if (!old.has(p) && (await isRingd(p).catch(() => false))) return true;
      return false;
    }, 1);
    round.respawnMs = performance.now() - t1;
    await until(async () => Number((await control(childState, "status")).startedMs) !== before);
    round.aliveMs = performance.now() - t1;
    // The floor: ringd start of a joined ring-1 node, spawned here directly.
    const t2 = performance.now();
    const plain = procs.spawn("ringd", ["start", "--data-dir", plainDir]);
    await until(async () => (await control(plainDir, "status")).nodeKey !== undefined);
    round.plainStartMs = performance.now() - t2;
    await new Promise<void>((resolve) => {
      plain.once("exit", () => resolve());
      plain.kill("SIGTERM");
    });
    say(
      `round ${i + 1}/${runs}: create ${Math.round(round.createMs)} ms, member ${Math.round(round.memberMs)} ms, ` +
        `kill -9 -> respawn ${Math.round(round.respawnMs)} ms, -> alive ${Math.round(round.aliveMs)} ms; ` +
        `plain ringd start ${Math.round(round.plainStartMs)} ms (node ${key.slice(0, 8)})`,
    );
    rounds.push(round);
  }
} finally {
  for (const name of names) {
    const removed = await procs.run("ringctl", [
      "child",
      "remove",
      name,
      "--node",
      seedKey,
      "--data-dir",
      seedDir,
    ]);
    if (removed.code !== 0) say(`could not remove ${name}: ${removed.stderr.trim()}`);
  }
  await procs.stopAll();
  for (const name of names) {
    const user = deriveUserName("enjin-", name);
    const account = await findAccount(user);
    if (account.user === undefined) continue;
    for (const pid of await processesOfUid(account.user.uid)) process.kill(pid, "SIGKILL");
    await sleep(300);
    execFileSync("userdel", [user]);
  }
  await rm(base, { recursive: true, force: true });
}

const pick = (k: string) => stats(rounds.map((r) => r[k]!));
const result = {
  machine: {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    memoryBytes: totalmem(),
    loadavg: loadavg(),
    uptimeBefore,
    uptimeAfter: execFileSync("uptime").toString().trim(),
    runner: procs.runner,
  },
  createMs: pick("createMs"),
  memberMs: pick("memberMs"),
  respawnMs: pick("respawnMs"),
  aliveMs: pick("aliveMs"),
  plainStartMs: pick("plainStartMs"),
};
say(JSON.stringify(result, null, 2));
console.log(JSON.stringify(result));
