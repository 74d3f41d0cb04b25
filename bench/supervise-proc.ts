/**
 * Supervision benchmark for the `proc` strategy, each number against a plain `child_process.spawn`
 * of the same program measured in the same run:
 *
 * - start-to-ready: `create()` until the supervisor reports the child healthy (its http check on
 *   /health), against spawn + polling /health every 5 ms; also when the supervised child first
 *   answered (the same 5 ms poll), to separate the child's own start from the check's cadence;
 * - death-to-restart: kill -9 until healthy again (policy delay 0, no jitter), against a plain
 *   respawn on 'exit' + polling;
 * - cost per supervised child: heap and RSS growth of this process for 100 idle children, and CPU
 *   per second while they sit idle, against 100 plain spawned copies: `sleep` with no health check
 *   (the bookkeeping alone), and `busybox httpd` with a tcp check every second.
 *
 * `npx tsx --expose-gc bench/supervise-proc.ts [--runs 20] [--idle-children 100] [--idle-ms 10000]`
 * prints JSON. Everything it starts is removed before it exits.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { systemClock } from "../agent/clock.ts";
import { type NodeStore, openStore } from "../agent/store/store.ts";
import { type CreateChildRequest, Supervisor, type SupervisorEvent } from "../agent/supervise/index.ts";
import { seededRng } from "../rings/index.ts";

const HTTP_CHILD = join(import.meta.dirname, "..", "agent", "supervise", "fixtures", "http-child.mjs");
const POLL_MS = 5;

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "20" },
    "idle-children": { type: "string", default: "100" },
    "idle-ms": { type: "string", default: "10000" },
  },
});
const RUNS = Number(values.runs);
const IDLE_CHILDREN = Number(values["idle-children"]);
const IDLE_MS = Number(values["idle-ms"]);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const gc = (globalThis as { gc?: () => void }).gc;

function percentiles(xs: number[]): { p50: number; p90: number; n: number } {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN;
  return { p50: round(at(0.5)), p90: round(at(0.9)), n: s.length };
}
const round = (x: number) => Math.round(x * 10) / 10;

async function answers(port: number): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(500) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

async function untilAnswers(port: number, timeoutMs = 20_000): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  while (!(await answers(port))) {
    if (performance.now() > deadline) throw new Error(`nothing answered on ${port} within ${timeoutMs} ms`);
    await sleep(POLL_MS);
  }
  return performance.now();
}

async function untilGone(port: number): Promise<void> {
  while (await answers(port)) await sleep(POLL_MS);
}

function spawnHttp(port: number): ChildProcess {
  return spawn(process.execPath, [HTTP_CHILD], {
    env: { PORT: String(port), PATH: "/usr/bin:/bin" },
    stdio: "ignore",
  });
}

async function killAndWait(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGKILL");
  await exited;
}

/** A supervisor on a fresh store, with an event hook the bench can wait on. */
async function openBenchSupervisor(root: string, firstPort: number, size: number) {
  const store: NodeStore = await openStore(join(root, "state"));
  const waiters: { match: (e: SupervisorEvent) => boolean; resolve: (atMs: number) => void }[] = [];
  const supervisor = await Supervisor.open({
    store,
    clock: systemClock(),
    rng: seededRng(1),
    childrenDir: join(root, "children"),
    ports: { firstPort, lastPort: firstPort + size - 1 },
    stopTimeoutMs: 2_000,
    onEvent: (e) => {
      for (const w of waiters.splice(0))
        if (w.match(e)) w.resolve(performance.now());
        else waiters.push(w);
    },
  });
  const next = (match: (e: SupervisorEvent) => boolean) =>
    new Promise<number>((resolve) => waiters.push({ match, resolve }));
  return { store, supervisor, next };
}

const httpRequest = (name: string): CreateChildRequest => ({
  spec: { name, command: [process.execPath, HTTP_CHILD] },
  strategy: "proc",
  restartPolicy: { delayMs: 0, maxDelayMs: 0, jitter: 0, attempts: 1_000, intervalMs: 1_000 },
  health: [{ kind: "http", path: "/health", intervalMs: 10_000, timeoutMs: 1_000, graceMs: 10_000 }],
});

async function startAndRestart(root: string, firstPort: number) {
  const plainStart: number[] = [];
  const plainRestart: number[] = [];
  const supStart: number[] = [];
  const supFirstAnswer: number[] = [];
  const supRestart: number[] = [];
  const { store, supervisor, next } = await openBenchSupervisor(root, firstPort, 10);
  const plainPort = firstPort + 10;
  try {
    for (let i = 0; i < RUNS; i++) {
      // Plain: spawn, poll until it answers; kill -9, respawn on exit, poll again.
      let t0 = performance.now();
      let child = spawnHttp(plainPort);
      plainStart.push((await untilAnswers(plainPort)) - t0);
      t0 = performance.now();
      const respawned = new Promise<ChildProcess>((resolve) =>
        child.once("exit", () => resolve(spawnHttp(plainPort))),
      );
      child.kill("SIGKILL");
      child = await respawned;
      plainRestart.push((await untilAnswers(plainPort)) - t0);
      await killAndWait(child);

      // Supervised: create until the healthy event; kill -9 until healthy again.
      const name = `bench-${i}`;
      const healthy = () => next((e) => e.kind === "healthy" && e.name === name);
      let ready = healthy();
      t0 = performance.now();
      const created = supervisor.create(httpRequest(name));
      const port = (await created).port;
      supFirstAnswer.push((await untilAnswers(port)) - t0);
      supStart.push((await ready) - t0);
      ready = healthy();
      t0 = performance.now();
      process.kill(supervisor.get(name).pid!, "SIGKILL");
      supRestart.push((await ready) - t0);
      await supervisor.remove(name);
      await untilGone(port);
    }
  } finally {
    for (const c of supervisor.list()) await supervisor.remove(c.name);
    await supervisor.close();
    await store.close();
  }
  return {
    startToReadyMs: {
      plainSpawnPoll5ms: percentiles(plainStart),
      supervisorHealthyEvent: percentiles(supStart),
      supervisedFirstAnswerPoll5ms: percentiles(supFirstAnswer),
      ratioP50: round(percentiles(supStart).p50 / percentiles(plainStart).p50),
    },
    deathToRestartMs: {
      plainRespawnPoll5ms: percentiles(plainRestart),
      supervisorHealthyEvent: percentiles(supRestart),
      ratioP50: round(percentiles(supRestart).p50 / percentiles(plainRestart).p50),
    },
  };
}

function memory() {
  gc?.();
  gc?.();
  const m = process.memoryUsage();
  return { heapBytes: m.heapUsed, rssBytes: m.rss };
}

/** One kind of idle child: the program, and the health checks the supervisor runs on it. */
interface IdleKind {
  readonly label: string;
  readonly command: string[];
  readonly health: CreateChildRequest["health"];
}

const IDLE_KINDS: IdleKind[] = [
  { label: "sleep, no health check", command: ["/bin/sleep", "3600"], health: [] },
  {
    label: "busybox httpd, tcp check every 1 s",
    command: ["/bin/sh", "-c", 'exec /usr/bin/busybox httpd -f -p "127.0.0.1:$PORT" -h .'],
    health: [{ kind: "tcp", intervalMs: 1_000, timeoutMs: 1_000 }],
  },
];

async function idleCost(root: string, firstPort: number, kind: IdleKind) {
  const perSecond = (u: NodeJS.CpuUsage) => round((u.user + u.system) / 1000 / (IDLE_MS / 1000));
  const perChild = (a: number, b: number) => Math.round((a - b) / IDLE_CHILDREN);
  // Plain: IDLE_CHILDREN spawned copies, each with its own port, nothing else.
  const before = memory();
  const plain = Array.from({ length: IDLE_CHILDREN }, (_, i) =>
    spawn(kind.command[0]!, kind.command.slice(1), {
      stdio: "ignore",
      detached: true,
      cwd: root,
      env: { PORT: String(firstPort + IDLE_CHILDREN + 50 + i), PATH: "/usr/bin:/bin" },
    }),
  );
  await sleep(1_000);
  const plainMem = memory();
  let cpu = process.cpuUsage();
  await sleep(IDLE_MS);
  const plainCpu = process.cpuUsage(cpu);
  for (const c of plain) await killAndWait(c);

  const { store, supervisor } = await openBenchSupervisor(root, firstPort, IDLE_CHILDREN + 50);
  try {
    await sleep(500);
    const supBefore = memory();
    for (let i = 0; i < IDLE_CHILDREN; i++)
      await supervisor.create({
        spec: { name: `idle-${i}`, command: kind.command },
        strategy: "proc",
        health: kind.health,
      });
    await sleep(1_000);
    const unhealthy = supervisor.list().filter((c) => c.health !== "healthy").length;
    const supMem = memory();
    cpu = process.cpuUsage();
    await sleep(IDLE_MS);
    const supCpu = process.cpuUsage(cpu);
    return {
      kind: kind.label,
      children: IDLE_CHILDREN,
      notHealthyAfter1s: unhealthy,
      plainSpawn: {
        heapBytesPerChild: perChild(plainMem.heapBytes, before.heapBytes),
        rssBytesPerChild: perChild(plainMem.rssBytes, before.rssBytes),
        cpuMsPerSecond: perSecond(plainCpu),
      },
      supervisor: {
        heapBytesPerChild: perChild(supMem.heapBytes, supBefore.heapBytes),
        rssBytesPerChild: perChild(supMem.rssBytes, supBefore.rssBytes),
        cpuMsPerSecond: perSecond(supCpu),
      },
    };
  } finally {
    for (const c of supervisor.list()) await supervisor.remove(c.name);
    await supervisor.close();
    await store.close();
  }
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), "enjin-bench-supervise-"));
  const firstPort = 42_000 + Math.floor(Math.random() * 50) * 200;
  try {
    const restart = await startAndRestart(join(root, "a"), firstPort);
    const idle = [];
    for (const [i, kind] of IDLE_KINDS.entries()) {
      const dir = join(root, `idle-${i}`);
      await mkdir(dir);
      idle.push(await idleCost(dir, firstPort + 20, kind));
    }
    console.log(
      JSON.stringify(
        { runs: RUNS, node: process.version, gcForced: gc !== undefined, ...restart, idle },
        null,
        2,
      ),
    );
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

await main();
