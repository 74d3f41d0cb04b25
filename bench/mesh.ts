/**
 * Real-mesh benchmark (issue 3): real `ringd` processes on 127.0.0.1, a ring-0 seed and N joined
 * ring-1 nodes, each with its own key, LevelDB state and sockets, over ZeroMQ (or NATS). Measures:
 *
 * 1. join latency: `ringd join TOKEN` until it exits 0 (certificate issued and state stored), and
 *    until the seed lists the node alive (after `ringd start`); later nodes join with `--start` in
 *    batches, timed to their "joined mesh" line and to alive at the seed, under the batch's load;
 * 2. exec round trip: a signed Command of `true` to every node, submitted on the seed's control
 *    socket, until the last signed result arrives at the seed; baseline in the same run: raw NATS
 *    request/reply through a plain nats-server on 127.0.0.1 (one responder, and a fan-out to N);
 * 3. idle memory of joined nodes after 10 s idle (VmRSS, and Private_Clean + Private_Dirty of
 *    smaps_rollup), beside an idle `node --import tsx` process (the loader's own share);
 * 4. start-to-ready: `ringd start` of an initialised node until its control socket answers
 *    `status`, beside `node -e 0` and `node --import tsx -e 0`.
 *
 * Every process started here is killed at the end and the temp dir removed; every wait is bounded.
 * Run directly to print JSON: `npx tsx bench/mesh.ts [--nodes 20] [--transport zeromq|nats]`.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { connect, type NatsConnection } from "nats";
import { type ControlClient, connectControl } from "../agent/daemon/index.ts";
import { readKeyFile } from "../agent/store/key-file.ts";
import { encodePayload, envelopeIdKey, keyHex, MessageType, sealEnvelope } from "../protocol/index.ts";

/** Options of measureMesh. */
export interface MeshBenchOptions {
  /** Joined nodes besides the seed (default 20). */
  readonly nodes?: number;
  readonly transport?: "zeromq" | "nats";
  /** Exec round trips measured (default 30). */
  readonly commands?: number;
  /** Nodes joined one at a time, unloaded, with `ringd join` then `ringd start` (default 5). */
  readonly timedJoins?: number;
  /** Nodes joined at once in each later batch (default 10). */
  readonly batch?: number;
  /** Idle wait before reading memory (default 10 s). */
  readonly idleMs?: number;
  /** Progress lines (default: none). */
  readonly say?: (line: string) => void;
}

/** p50 / p99 / max of a sample, in ms (one decimal). */
export interface Percentiles {
  readonly n: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

/** Memory of one process, MiB. */
export interface Memory {
  readonly rssMiB: number;
  readonly privateMiB: number;
}

export interface MeshResults {
  readonly transport: "zeromq" | "nats";
  readonly nodes: number;
  /** 1-minute load average when the run started and when it ended (others' work on the machine shows here). */
  readonly loadAverage: readonly [number, number];
  readonly join: {
    /** `ringd join` spawn → exit 0, joined one at a time on an otherwise idle mesh. */
    readonly joinExitMs: Percentiles;
    /** `ringd join` spawn → (exit, then `ringd start`) → listed alive at the seed. */
    readonly joinToAliveMs: Percentiles;
    /** `ringd join --start`, `batch` at once: spawn → "joined mesh" line. */
    readonly batchJoinedMs: Percentiles;
    /** `ringd join --start`, `batch` at once: spawn → alive at the seed. */
    readonly batchAliveMs: Percentiles;
    readonly batch: number;
    /** Joined nodes the seed did not list alive within 60 s of joining. */
    readonly notAliveAtSeed: readonly string[];
    /** Members the seed listed alive (itself included) when the exec measurements began. */
    readonly aliveBeforeExec: number;
  };
  readonly exec: {
    /** Nodes started (the seed and every joined node). */
    readonly answers: number;
    /** Fewest answers to a timed command: the members the seed knew, if fewer than started. */
    readonly fewestAnswers: number;
    /** Commands every node the seed expected answered: submit → last result at the seed. */
    readonly roundTripMs: Percentiles;
    /**
     * Commands (warm-up included) some expected node did not answer within 10 s, with the time from
     * submit to the last result that did arrive.
     */
    readonly incomplete: readonly {
      readonly answered: number;
      readonly missing: number;
      readonly lastResultMs: number;
    }[];
    readonly natsRequestMs: Percentiles;
    readonly natsFanoutMs: Percentiles;
    /** The work itself: `answers` concurrent execFile("true") from one process, until all exit. */
    readonly spawnTrueMs: Percentiles;
  };
  readonly memory: {
    readonly idleMs: number;
    /** Joined nodes: median and worst. */
    readonly ringdMedian: Memory;
    readonly ringdMax: Memory;
    /** `node --import tsx -e "setInterval(…)"` idle as long. */
    readonly tsxIdle: Memory;
    /** `node -e "setInterval(…)"` idle as long. */
    readonly nodeIdle: Memory;
  };
  readonly startToReady: {
    /** The seed's first start, and the joined nodes' `ringd start` after `ringd join`. */
    readonly ringdMs: Percentiles;
    readonly nodeMs: Percentiles;
    readonly tsxMs: Percentiles;
  };
}

const ROOT = join(import.meta.dirname, "..");
const RINGD = join(ROOT, "ctl", "bin", "ringd.ts");
const RINGCTL = join(ROOT, "ctl", "bin", "ringctl.ts");
const WAIT_MS = 120_000;
/** How long the seed waits for every answer to one command. */
const COMMAND_WAIT_MS = 10_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function percentiles(xs: readonly number[]): Percentiles {
  if (xs.length === 0) return { n: 0, p50: Number.NaN, p99: Number.NaN, max: Number.NaN };
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
  const r1 = (x: number) => Math.round(x * 10) / 10;
  return { n: s.length, p50: r1(at(0.5)), p99: r1(at(0.99)), max: r1(s[s.length - 1]!) };
}

/** A port nothing listens on now (the OS's choice). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** A failure that ends a wait at once (other errors of a probe mean "not yet"). */
class Fatal extends Error {}

/** Is `port` free on 127.0.0.1 right now? */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });
}

/**
 * A node's listen port: free now, and so are the next two (a seed's join endpoint and a NATS seed's
 * nats-server take port + 1 and + 2). Others' meshes on this machine pick random ports too.
 */
async function freeNodePort(taken: Set<number>): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = await freePort();
    if (port > 65_000 || [0, 1, 2].some((d) => taken.has(port + d))) continue;
    if ((await portFree(port + 1)) && (await portFree(port + 2))) {
      for (const d of [0, 1, 2]) taken.add(port + d);
      return port;
    }
  }
  throw new Error("no free port triple on 127.0.0.1");
}

async function until<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  intervalMs = 10,
  timeoutMs = WAIT_MS,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const got = await probe().catch((err: unknown) => {
      if (err instanceof Fatal) throw err;
      return undefined;
    });
    if (got !== undefined) return got;
    await sleep(intervalMs);
  }
  throw new Error(`timed out (${timeoutMs} ms) waiting for ${what}`);
}

async function memoryOf(pid: number): Promise<Memory> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const rollup = await readFile(`/proc/${pid}/smaps_rollup`, "utf8");
  const kb = (text: string, field: string) =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text)?.[1]);
  const mib = (k: number) => Math.round((k / 1024) * 10) / 10;
  return {
    rssMiB: mib(kb(status, "VmRSS")),
    privateMiB: mib(kb(rollup, "Private_Clean") + kb(rollup, "Private_Dirty")),
  };
}

/** Everything one run starts, so that all of it is stopped at the end. */
class Processes {
  readonly children: ChildProcess[] = [];
  readonly stderr = new Map<ChildProcess, () => string>();

  /** What `child` wrote on stderr last. */
  tail(child: ChildProcess): string {
    return this.stderr.get(child)?.() ?? "";
  }

  spawn(args: string[], stdout: "pipe" | "ignore" = "ignore"): ChildProcess {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("ENJIN_")));
    const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ["ignore", stdout, "pipe"] });
    child.on("error", () => undefined);
    // The tail of stderr, for the message when a process fails.
    let tail = "";
    child.stderr?.on("data", (b: Buffer) => {
      tail = (tail + b.toString()).slice(-2_000);
    });
    this.stderr.set(child, () => tail);
    this.children.push(child);
    return child;
  }

  /** SIGTERM all (a ringd leaves the mesh, a NATS seed stops its nats-server), SIGKILL after 10 s. */
  async stopAll(): Promise<void> {
    const alive = (c: ChildProcess) => c.exitCode === null && c.signalCode === null;
    await Promise.all(
      this.children.filter(alive).map(
        (c) =>
          new Promise<void>((resolve) => {
            const timer = setTimeout(() => c.kill("SIGKILL"), 10_000);
            c.once("exit", () => {
              clearTimeout(timer);
              resolve();
            });
            c.kill("SIGTERM");
          }),
      ),
    );
  }
}

function exited(child: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve(child.exitCode);
    child.once("exit", (code) => resolve(code ?? -1));
  });
}

/** Wall time of spawning `args` until it exits (ms), `count` times. */
async function timeExit(procs: Processes, args: string[], count: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    const code = await exited(procs.spawn(args));
    if (code !== 0) throw new Error(`node ${args.join(" ")} exited ${code}`);
    out.push(performance.now() - t0);
  }
  return out;
}

function runTool(bin: string, args: string[]): Promise<string> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("ENJIN_")));
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ["--import", "tsx", bin, ...args],
      { cwd: ROOT, env, timeout: WAIT_MS },
      (err, stdout, stderr) =>
        err === null ? resolve(stdout) : reject(new Error(`${err.message}\n${stderr}`)),
    );
  });
}

/** One control call on a fresh connection. */
async function control(dataDir: string, method: string, params: unknown = {}): Promise<unknown> {
  const client = await connectControl(join(dataDir, "ringd.sock"), { connectTimeoutMs: 2_000 });
  try {
    return await client.call(method, params);
  } finally {
    client.close();
  }
}

/** Wall time of `fanout` concurrent execFile("true") until every one exits, `count` times. */
async function measureSpawnTrue(fanout: number, count: number): Promise<number[]> {
  const once = () =>
    new Promise<void>((resolve, reject) =>
      execFile("true", (err) => (err === null ? resolve() : reject(err))),
    );
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    await Promise.all(Array.from({ length: fanout }, once));
    out.push(performance.now() - t0);
  }
  return out;
}

/** Raw NATS request/reply on a plain nats-server: one responder, and a fan-out to `fanout`. */
async function measureNatsBaseline(
  procs: Processes,
  dir: string,
  fanout: number,
  count: number,
): Promise<{ request: number[]; fanout: number[] }> {
  const port = await freePort();
  const server = spawn("nats-server", ["-a", "127.0.0.1", "-p", String(port), "--store_dir", dir], {
    stdio: "ignore",
  });
  server.on("error", () => undefined);
  procs.children.push(server);
  const conns: NatsConnection[] = [];
  try {
    const open = () =>
      until("nats-server", async () => {
        const nc = await connect({ servers: `nats://127.0.0.1:${port}`, maxReconnectAttempts: 0 });
        conns.push(nc);
        return nc;
      });
    const client = await open();
    // Each responder on its own connection, as each agent would be.
    for (let i = 0; i < fanout; i++) {
      const nc = await open();
      nc.subscribe("bench.fan", { callback: (_err, m) => m.respond(m.data) });
      if (i === 0) nc.subscribe("bench.one", { callback: (_err, m) => m.respond(m.data) });
      await nc.flush();
    }
    const payload = randomBytes(200);
    const request: number[] = [];
    const fan: number[] = [];
    for (let i = 0; i < count + 3; i++) {
      const t0 = performance.now();
      await client.request("bench.one", payload, { timeout: 5_000 });
      if (i >= 3) request.push(performance.now() - t0); // the first few warm up
    }
    for (let i = 0; i < count + 3; i++) {
      const inbox = `bench.reply.${i}`;
      let got = 0;
      const t0 = performance.now();
      const all = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("NATS fan-out: replies missing")), 5_000);
        client.subscribe(inbox, {
          max: fanout,
          callback: () => {
            if (++got === fanout) {
              clearTimeout(timer);
              resolve();
            }
          },
        });
      });
      client.publish("bench.fan", payload, { reply: inbox });
      await all;
      if (i >= 3) fan.push(performance.now() - t0);
    }
    return { request, fanout: fan };
  } finally {
    await Promise.all(conns.map((c) => c.close().catch(() => undefined)));
    server.kill("SIGTERM");
    await exited(server);
  }
}

/** Run the whole measurement; every process it starts is stopped before it returns or throws. */
export async function measureMesh(opts: MeshBenchOptions = {}): Promise<MeshResults> {
  const count = opts.nodes ?? 20;
  const transport = opts.transport ?? "zeromq";
  const commands = opts.commands ?? 30;
  const timedJoins = Math.min(opts.timedJoins ?? 5, count);
  const batch = opts.batch ?? 10;
  const idleMs = opts.idleMs ?? 10_000;
  const say = opts.say ?? (() => undefined);
  const procs = new Processes();
  const dir = await mkdtemp(join(tmpdir(), "enjin-bench-mesh-"));
  const taken = new Set<number>();
  const dataDir = (i: number) => join(dir, i === 0 ? "seed" : `n${i}`);
  const ringd = (args: string[]) => ["--import", "tsx", RINGD, ...args, "--log-level", "warn"];
  const daemons = new Map<number, ChildProcess>();
  const loadAtStart = Math.round(loadavg()[0]! * 10) / 10;
  try {
    // Baselines of process start-up (before the mesh loads the machine).
    const nodeMs = await timeExit(procs, ["-e", "0"], 5);
    const tsxMs = await timeExit(procs, ["--import", "tsx", "-e", "0"], 5);
    say(
      `baseline start-up: node -e 0 ${percentiles(nodeMs).p50} ms, node --import tsx -e 0 ${percentiles(tsxMs).p50} ms`,
    );

    // The seed.
    await runTool(RINGD, [
      "init",
      "--data-dir",
      dataDir(0),
      "--listen",
      `127.0.0.1:${await freeNodePort(taken)}`,
      "--name",
      "seed",
      "--transport",
      transport,
    ]);
    const ready: number[] = [];
    const startNode = async (i: number): Promise<number> => {
      const t0 = performance.now();
      const child = procs.spawn(ringd(["start", "--data-dir", dataDir(i)]));
      daemons.set(i, child);
      await until(
        `ringd ${i} ready (its stderr: ${procs.tail(child) || "nothing"})`,
        () => {
          if (child.exitCode !== null)
            throw new Fatal(`ringd start ${i} exited ${child.exitCode}: ${procs.tail(child)}`);
          return control(dataDir(i), "status");
        },
        5,
      );
      const ms = performance.now() - t0;
      ready.push(ms);
      return ms;
    };
    say(`seed start-to-ready: ${Math.round(await startNode(0))} ms`);
    const token = (
      await runTool(RINGCTL, [
        "token",
        "create",
        "--data-dir",
        dataDir(0),
        "--ring",
        "1",
        "--tier",
        "web",
        "--uses",
        String(count),
        "--ttl",
        "1h",
      ])
    ).trim();

    const aliveAtSeed = async (): Promise<Set<string>> => {
      const r = (await control(dataDir(0), "nodes")) as { nodes: { id: string; state: string }[] };
      return new Set(r.nodes.filter((n) => n.state === "alive").map((n) => n.id));
    };
    const nodeKey = async (i: number) => keyHex((await readKeyFile(join(dataDir(i), "node.key")))!.publicKey);
    const joinArgs = (i: number, port: number) => [
      "join",
      token,
      "--data-dir",
      dataDir(i),
      "--listen",
      `127.0.0.1:${port}`,
      "--name",
      `n${i}`,
      "--transport",
      transport,
    ];

    // 1a. Joins one at a time: join (until exit 0), then start (until ready, and until alive at the seed).
    const joinExitMs: number[] = [];
    const joinToAliveMs: number[] = [];
    for (let i = 1; i <= timedJoins; i++) {
      const port = await freeNodePort(taken);
      const t0 = performance.now();
      const joiner = procs.spawn(ringd(joinArgs(i, port)));
      const code = await exited(joiner);
      if (code !== 0) throw new Error(`ringd join n${i} exited ${code}: ${procs.tail(joiner)}`);
      joinExitMs.push(performance.now() - t0);
      const key = await nodeKey(i);
      await startNode(i);
      await until(`n${i} alive at the seed`, async () => ((await aliveAtSeed()).has(key) ? true : undefined));
      joinToAliveMs.push(performance.now() - t0);
    }
    say(
      `join (one at a time): exit 0 p50 ${percentiles(joinExitMs).p50} ms; ` +
        `join + start → alive at seed p50 ${percentiles(joinToAliveMs).p50} ms`,
    );

    // 1b. The rest with `join --start`, `batch` at a time.
    const batchJoinedMs: number[] = [];
    const batchAliveMs: number[] = [];
    const notAlive: string[] = [];
    for (let first = timedJoins + 1; first <= count; first += batch) {
      const ids = Array.from({ length: Math.min(batch, count - first + 1) }, (_, k) => first + k);
      await Promise.all(
        ids.map(async (i) => {
          const port = await freeNodePort(taken);
          const t0 = performance.now();
          const child = procs.spawn(ringd([...joinArgs(i, port), "--start"]), "pipe");
          daemons.set(i, child);
          // Drain stdout for as long as the daemon runs, so that it never blocks on a full pipe.
          let text = "";
          child.stdout?.on("data", (b: Buffer) => {
            text += b.toString();
          });
          await until(
            `n${i} joined`,
            async () => {
              if (child.exitCode !== null)
                throw new Fatal(`ringd join --start n${i} exited ${child.exitCode}: ${procs.tail(child)}`);
              return /joined mesh/.test(text) ? true : undefined;
            },
            5,
          );
          batchJoinedMs.push(performance.now() - t0);
          const key = await nodeKey(i);
          // A node the seed does not list alive in time is recorded, not fatal.
          const alive = await until(
            `n${i} alive at the seed`,
            async () => ((await aliveAtSeed()).has(key) ? true : undefined),
            20,
            60_000,
          ).catch(() => false);
          if (alive) batchAliveMs.push(performance.now() - t0);
          else notAlive.push(`n${i}`);
        }),
      );
      say(`joined n${ids[0]}–n${ids[ids.length - 1]}`);
    }
    await until(
      "every node alive at the seed",
      async () => ((await aliveAtSeed()).size === count + 1 ? true : undefined),
      100,
      30_000,
    ).catch(() => undefined);
    const aliveBeforeExec = (await aliveAtSeed()).size;
    if (notAlive.length > 0 || aliveBeforeExec !== count + 1)
      say(
        `not alive at the seed within 60 s of joining: ${notAlive.join(", ")}; ${aliveBeforeExec} alive before exec`,
      );
    say(
      `join --start in batches of ${batch}: joined p50 ${percentiles(batchJoinedMs).p50} ms, ` +
        `alive at seed p50 ${percentiles(batchAliveMs).p50} ms`,
    );

    // 2. Exec round trips through the seed's control socket.
    const operator = (await readKeyFile(join(dataDir(0), "operator.key")))!;
    const client: ControlClient = await connectControl(join(dataDir(0), "ringd.sock"));
    const roundTrip: number[] = [];
    const answeredCounts: number[] = [];
    const incomplete: { answered: number; missing: number; lastResultMs: number }[] = [];
    try {
      for (let c = 0; c < commands + 3; c++) {
        const now = Date.now();
        const envelope = sealEnvelope(
          operator,
          MessageType.Command,
          encodePayload(MessageType.Command, {
            selector: {},
            action: "exec",
            args: ["true"],
            nonce: new Uint8Array(randomBytes(16)),
            issuedAtMs: now,
            expiresMs: now + 60_000,
          }),
        );
        const t0 = performance.now();
        let lastResultAt = t0;
        const r = (await client.call(
          "command.submit",
          { envelope: Buffer.from(envelope).toString("base64"), waitMs: COMMAND_WAIT_MS },
          (p) => {
            if ((p as { result?: string }).result !== undefined) lastResultAt = performance.now();
          },
        )) as { id: string; results: string[]; missing: unknown[] };
        const ms = performance.now() - t0;
        if (r.id !== envelopeIdKey(envelope)) throw new Error(`exec ${c}: the seed answered for ${r.id}`);
        // Timed when every node the seed expected answered (the seed expects the members it knows,
        // which can be fewer than were started); otherwise counted, with its last result's time.
        if (r.missing.length > 0) {
          const lastResultMs = Math.round((lastResultAt - t0) * 10) / 10;
          incomplete.push({ answered: r.results.length, missing: r.missing.length, lastResultMs });
          say(`exec ${c}: ${r.missing.length} expected node(s) did not answer within ${COMMAND_WAIT_MS} ms`);
          continue;
        }
        if (c >= 3) answeredCounts.push(r.results.length);
        if (c >= 3) roundTrip.push(ms); // the first few warm up
      }
    } finally {
      client.close();
    }
    say(`exec true × ${commands} to ${count + 1} nodes: ${JSON.stringify(percentiles(roundTrip))}`);

    const nats = await measureNatsBaseline(procs, join(dir, "nats-baseline"), count, commands);
    say(
      `raw NATS: request p50 ${percentiles(nats.request).p50} ms; fan-out to ${count} p50 ${percentiles(nats.fanout).p50} ms`,
    );

    const spawnTrue = await measureSpawnTrue(count + 1, commands);
    say(`execFile("true") × ${count + 1} at once from one process: p50 ${percentiles(spawnTrue).p50} ms`);

    // 3. Idle memory, with the bare loaders idling as long beside it.
    const idle = (args: string[]) => procs.spawn([...args, "-e", "setInterval(() => {}, 1000)"]);
    const tsxIdle = idle(["--import", "tsx"]);
    const nodeIdle = idle([]);
    say(`idle ${idleMs / 1000} s ...`);
    await sleep(idleMs);
    const joined = [...daemons.entries()].filter(([i]) => i !== 0).map(([, c]) => c.pid!);
    const mems = await Promise.all(joined.map(memoryOf));
    const median = (f: (m: Memory) => number) =>
      [...mems].map(f).sort((a, b) => a - b)[Math.floor(mems.length / 2)]!;
    const results: MeshResults = {
      transport,
      nodes: count,
      loadAverage: [loadAtStart, Math.round(loadavg()[0]! * 10) / 10],
      join: {
        joinExitMs: percentiles(joinExitMs),
        joinToAliveMs: percentiles(joinToAliveMs),
        batchJoinedMs: percentiles(batchJoinedMs),
        batchAliveMs: percentiles(batchAliveMs),
        batch,
        notAliveAtSeed: notAlive,
        aliveBeforeExec,
      },
      exec: {
        answers: count + 1,
        fewestAnswers: answeredCounts.length === 0 ? 0 : Math.min(...answeredCounts),
        roundTripMs: percentiles(roundTrip),
        incomplete,
        natsRequestMs: percentiles(nats.request),
        natsFanoutMs: percentiles(nats.fanout),
        spawnTrueMs: percentiles(spawnTrue),
      },
      memory: {
        idleMs,
        ringdMedian: { rssMiB: median((m) => m.rssMiB), privateMiB: median((m) => m.privateMiB) },
        ringdMax: {
          rssMiB: Math.max(...mems.map((m) => m.rssMiB)),
          privateMiB: Math.max(...mems.map((m) => m.privateMiB)),
        },
        tsxIdle: await memoryOf(tsxIdle.pid!),
        nodeIdle: await memoryOf(nodeIdle.pid!),
      },
      startToReady: { ringdMs: percentiles(ready), nodeMs: percentiles(nodeMs), tsxMs: percentiles(tsxMs) },
    };
    say(`memory: ${JSON.stringify(results.memory)}`);
    return results;
  } finally {
    await procs.stopAll();
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const { values } = parseArgs({
    options: { nodes: { type: "string", default: "20" }, transport: { type: "string", default: "zeromq" } },
  });
  const transport = values.transport === "nats" ? "nats" : "zeromq";
  const r = await measureMesh({
    nodes: Number(values.nodes),
    transport,
    say: (line) => process.stderr.write(`${line}\n`),
  });
  console.log(JSON.stringify(r, null, 2));
}
