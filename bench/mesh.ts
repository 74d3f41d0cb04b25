/**
 * Real-mesh benchmark (issue 3): real `ringd` processes on 127.0.0.1, a ring-0 seed and N joined
 * ring-1 nodes, each with its own key, LevelDB state and sockets, over ZeroMQ (or NATS). Measures:
 *
 * 1. join latency: `ringd join TOKEN` until it exits 0 (certificate issued and state stored), and
 *    until the seed lists the node alive (after `ringd start`); later nodes join with `--start` in
 *    batches, timed to their "joined mesh" line and to alive at the seed, under the batch's load;
 * 2. exec round trip: a signed Command of `true` to every node, submitted on the seed's control
 *    socket, until the last signed result arrives at the seed; the same for `child.list`, which
 *    starts no process (the command machinery alone); baseline in the same run: raw NATS
 *    request/reply through a plain nats-server on 127.0.0.1 (one responder, and a fan-out to N);
 * 3. idle memory of joined nodes after 10 s idle (VmRSS, and Private_Clean + Private_Dirty of
 *    smaps_rollup), beside an idle `node` and an idle `node --import tsx` process;
 * 4. start-to-ready: `ringd start` of an initialised node until its control socket answers
 *    `status`, beside `node -e 0` and `node --import tsx -e 0`.
 *
 * ringd and ringctl are the built JavaScript (dist/, `npm run build`; the bench refuses a missing or
 * stale build) unless `runner: "tsx"`, with the node options of their shebang lines unless
 * `nodeOptions` replaces them (`--node-options=""`: none), to measure flags' effect. Processes are
 * started by scripts/ringd-process.ts.
 *
 * Every process started here is killed at the end and the temp dir removed; every wait is bounded.
 * Run directly to print JSON: `npx tsx bench/mesh.ts [--nodes 20] [--transport zeromq|nats]
 * [--runner dist|tsx] [--node-options="--max-semi-space-size=1 …"]`.
 */
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { type ControlClient, connectControl } from "../agent/daemon/index.ts";
import { readKeyFile } from "../agent/store/key-file.ts";
import { encodePayload, envelopeIdKey, keyHex, MessageType, sealEnvelope } from "../protocol/index.ts";
import { controlCall, type Ran, RingdProcesses, type Runner } from "../scripts/ringd-process.ts";
import {
  exited,
  Fatal,
  freeNodePort,
  type Memory,
  measureNatsBaseline,
  measureSpawnTrue,
  memoryOf,
  type Percentiles,
  percentiles,
  sleep,
  timeExit,
  until,
  WAIT_MS,
} from "./mesh-support.ts";

export type { Memory, Percentiles } from "./mesh-support.ts";

/** CPU time (ms) a process has used so far, all its threads: the sum over /proc/PID/task/TID/schedstat. */
async function cpuMsOf(pid: number): Promise<number> {
  let ns = 0;
  for (const task of await readdir(`/proc/${pid}/task`).catch(() => [])) {
    const stat = await readFile(`/proc/${pid}/task/${task}/schedstat`, "utf8").catch(() => "0");
    ns += Number(stat.split(" ")[0]);
  }
  return ns / 1e6;
}

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
  /** "dist" (default: the build, which must be fresh) or "tsx" (the sources). */
  readonly runner?: Runner;
  /** Node options for every ringd and ringctl (default: those of each binary's shebang line). */
  readonly nodeOptions?: readonly string[];
  /** Progress lines (default: none). */
  readonly say?: (line: string) => void;
}

/** One run's record. */
export interface MeshResults {
  readonly transport: "zeromq" | "nats";
  readonly nodes: number;
  /** How ringd ran: the build or tsx, and its node options. */
  readonly runner: Runner;
  readonly nodeOptions: readonly string[];
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
    /** `child.list` to every node (no process started: the signed command and results alone). */
    readonly listRoundTripMs: Percentiles;
    /** child.list commands some expected node did not answer within 10 s. */
    readonly listIncomplete: readonly {
      readonly answered: number;
      readonly missing: number;
      readonly lastResultMs: number;
    }[];
    /** CPU time all ringd processes used together per exec command, and per child.list, less idle (ms). */
    readonly execCpuMs: number;
    readonly listCpuMs: number;
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

/** How long the seed waits for every answer to one command. */
const COMMAND_WAIT_MS = 10_000;

/** Run the whole measurement; every process it starts is stopped before it returns or throws. */
export async function measureMesh(opts: MeshBenchOptions = {}): Promise<MeshResults> {
  const count = opts.nodes ?? 20;
  const transport = opts.transport ?? "zeromq";
  const commands = opts.commands ?? 30;
  const timedJoins = Math.min(opts.timedJoins ?? 5, count);
  const batch = opts.batch ?? 10;
  const idleMs = opts.idleMs ?? 10_000;
  const say = opts.say ?? (() => undefined);
  const procs = new RingdProcesses({
    runner: opts.runner ?? "dist",
    ...(opts.nodeOptions === undefined ? {} : { nodeOptions: opts.nodeOptions }),
  });
  const nodeOptions = procs.nodeOptions("ringd");
  say(`ringd: ${procs.runner} (${procs.reason}), node options: ${nodeOptions.join(" ") || "none"}`);
  /** The stdout of a ringd or ringctl run that must succeed. */
  const stdoutOf = async (what: string, ran: Promise<Ran>): Promise<string> => {
    const r = await ran;
    if (r.code !== 0) throw new Error(`${what} exited ${r.code}: ${r.stderr}`);
    return r.stdout;
  };
  const bounded = { timeoutMs: WAIT_MS };
  const dir = await mkdtemp(join(tmpdir(), "enjin-bench-mesh-"));
  const taken = new Set<number>();
  const dataDir = (i: number) => join(dir, i === 0 ? "seed" : `n${i}`);
  const ringd = (args: string[], stdout: "pipe" | "ignore" = "ignore") =>
    procs.spawn("ringd", [...args, "--log-level", "warn"], { stdout });
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
    const listen = `127.0.0.1:${await freeNodePort(taken)}`;
    const init = [
      "init",
      "--data-dir",
      dataDir(0),
      "--listen",
      listen,
      "--name",
      "seed",
      "--transport",
      transport,
    ];
    await stdoutOf("ringd init", procs.run("ringd", init, bounded));
    const ready: number[] = [];
    const startNode = async (i: number): Promise<number> => {
      const t0 = performance.now();
      daemons.set(i, await procs.start(dataDir(i), ["--log-level", "warn"], { ...bounded, intervalMs: 5 }));
      const ms = performance.now() - t0;
      ready.push(ms);
      return ms;
    };
    say(`seed start-to-ready: ${Math.round(await startNode(0))} ms`);
    const token = (
      await stdoutOf(
        "ringctl token",
        procs.ctl(
          ["token", "create", "--ring", "1", "--tier", "web", "--uses", String(count), "--ttl", "1h"],
          dataDir(0),
          bounded,
        ),
      )
    ).trim();

    const aliveAtSeed = async (): Promise<Set<string>> => {
      const r = (await controlCall(dataDir(0), "nodes")) as { nodes: { id: string; state: string }[] };
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
      const joiner = ringd(joinArgs(i, port));
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
          const child = ringd([...joinArgs(i, port), "--start"], "pipe");
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

    // 2. Command round trips through the seed's control socket: `exec true` (a process started on
    // every node), then `child.list` (answered from memory: the command machinery alone).
    const operator = (await readKeyFile(join(dataDir(0), "operator.key")))!;
    const client: ControlClient = await connectControl(join(dataDir(0), "ringd.sock"));
    const roundTrips = async (action: string, args: string[]) => {
      const roundTrip: number[] = [];
      const answeredCounts: number[] = [];
      const incomplete: { answered: number; missing: number; lastResultMs: number }[] = [];
      for (let c = 0; c < commands + 3; c++) {
        const now = Date.now();
        const envelope = sealEnvelope(
          operator,
          MessageType.Command,
          encodePayload(MessageType.Command, {
            selector: {},
            action,
            args,
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
        if (r.id !== envelopeIdKey(envelope))
          throw new Error(`${action} ${c}: the seed answered for ${r.id}`);
        // Timed when every node the seed expected answered (the seed expects the members it knows,
        // which can be fewer than were started); otherwise counted, with its last result's time.
        if (r.missing.length > 0) {
          const lastResultMs = Math.round((lastResultAt - t0) * 10) / 10;
          incomplete.push({ answered: r.results.length, missing: r.missing.length, lastResultMs });
          say(
            `${action} ${c}: ${r.missing.length} expected node(s) did not answer within ${COMMAND_WAIT_MS} ms`,
          );
          continue;
        }
        if (c >= 3) answeredCounts.push(r.results.length);
        if (c >= 3) roundTrip.push(ms); // the first few warm up
      }
      return { roundTrip, answeredCounts, incomplete };
    };
    /** The CPU time all ringd processes have used so far, in ms. */
    const ringdCpuMs = async () =>
      (await Promise.all([...daemons.values()].map((c) => cpuMsOf(c.pid!)))).reduce((a, b) => a + b, 0);
    // What the mesh uses idle (probes, gossip) is measured first and taken out of each command's share.
    const idleFrom = { cpu: await ringdCpuMs(), at: performance.now() };
    await sleep(3_000);
    const cpuAtStart = { cpu: await ringdCpuMs(), at: performance.now() };
    const idleCpuPerMs = (cpuAtStart.cpu - idleFrom.cpu) / (cpuAtStart.at - idleFrom.at);
    const perCommand = (from: { cpu: number; at: number }, to: { cpu: number; at: number }) =>
      Math.round(((to.cpu - from.cpu - idleCpuPerMs * (to.at - from.at)) / (commands + 3)) * 10) / 10;
    const execRuns = await roundTrips("exec", ["true"]).catch((err) => {
      client.close();
      throw err;
    });
    const cpuAfterExec = { cpu: await ringdCpuMs(), at: performance.now() };
    const listRuns = await roundTrips("child.list", []).finally(() => client.close());
    const execCpuMs = perCommand(cpuAtStart, cpuAfterExec);
    const listCpuMs = perCommand(cpuAfterExec, { cpu: await ringdCpuMs(), at: performance.now() });
    const { roundTrip, answeredCounts, incomplete } = execRuns;
    say(
      `child.list × ${commands} to ${count + 1} nodes: ${JSON.stringify(percentiles(listRuns.roundTrip))}; ` +
        `CPU of all ringd a command: child.list ${listCpuMs} ms, exec ${execCpuMs} ms`,
    );
    say(`exec true × ${commands} to ${count + 1} nodes: ${JSON.stringify(percentiles(roundTrip))}`);

    const nats = await measureNatsBaseline(procs, join(dir, "nats-baseline"), count, commands);
    say(
      `raw NATS: request p50 ${percentiles(nats.request).p50} ms; fan-out to ${count} p50 ${percentiles(nats.fanout).p50} ms`,
    );

    const spawnTrue = await measureSpawnTrue(count + 1, commands);
    say(`execFile("true") × ${count + 1} at once from one process: p50 ${percentiles(spawnTrue).p50} ms`);

    // 3. Idle memory, with the bare loaders idling as long beside it.
    const idle = (args: string[]) => procs.spawnNode([...args, "-e", "setInterval(() => {}, 1000)"]);
    const tsxIdle = idle(["--import", "tsx"]);
    const nodeIdle = idle([]);
    say(`idle ${idleMs / 1000} s ...`);
    await sleep(idleMs);
    const joined = [...daemons.entries()].filter(([i]) => i !== 0).map(([, c]) => c.pid!);
    const mems = await Promise.all(joined.map(memoryOf));
    const privates = (from: number, to: number) =>
      mems
        .slice(from, to)
        .map((m) => m.privateMiB)
        .join(" ");
    say(
      `private MiB: after join, then start: ${privates(0, timedJoins)}; join --start: ${privates(timedJoins, mems.length)}`,
    );
    const median = (f: (m: Memory) => number) =>
      [...mems].map(f).sort((a, b) => a - b)[Math.floor(mems.length / 2)]!;
    const results: MeshResults = {
      transport,
      nodes: count,
      runner: procs.runner,
      nodeOptions,
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
        listRoundTripMs: percentiles(listRuns.roundTrip),
        listIncomplete: listRuns.incomplete,
        execCpuMs,
        listCpuMs,
        natsRequestMs: percentiles(nats.request),
        natsFanoutMs: percentiles(nats.fanout),
        spawnTrueMs: percentiles(spawnTrue),
      },
      memory: {
        idleMs,
        ringdMedian: {
          rssMiB: median((m) => m.rssMiB),
          privateMiB: median((m) => m.privateMiB),
          pssMiB: median((m) => m.pssMiB),
        },
        ringdMax: {
          rssMiB: Math.max(...mems.map((m) => m.rssMiB)),
          privateMiB: Math.max(...mems.map((m) => m.privateMiB)),
          pssMiB: Math.max(...mems.map((m) => m.pssMiB)),
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
    options: {
      nodes: { type: "string", default: "20" },
      transport: { type: "string", default: "zeromq" },
      runner: { type: "string", default: "dist" },
      "node-options": { type: "string" },
    },
  });
  const transport = values.transport === "nats" ? "nats" : "zeromq";
  const r = await measureMesh({
    nodes: Number(values.nodes),
    transport,
    runner: values.runner === "tsx" ? "tsx" : "dist",
    ...(values["node-options"] === undefined
      ? {}
      : { nodeOptions: values["node-options"].split(/\s+/).filter((o) => o !== "") }),
    say: (line) => process.stderr.write(`${line}\n`),
  });
  console.log(JSON.stringify(r, null, 2));
}
