/**
 * Start-up benchmark (issue 3's start-to-ready goal, ≤ 250 ms): `ringd start` of an initialised
 * seed until its control socket answers `status`: the built JavaScript (dist/) with the node options
 * of its shebang and without them, and the sources under tsx, with `node -e 0` as the baseline — all
 * in one run, interleaved round by round so that others' load on the machine falls on each alike.
 * Each start is stopped with SIGTERM and waited for before the next.
 *
 * `npx tsx bench/startup.ts [--rounds 15] [--json]` (needs a fresh `npm run build`). Prints a summary
 * on stderr and, with --json, the record on stdout.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { RingdProcesses } from "../scripts/ringd-process.ts";
import { exited, freeNodePort, type Percentiles, percentiles } from "./mesh-support.ts";

/** One run's record. */
export interface StartupResults {
  readonly rounds: number;
  /** 1-minute load average at the start and at the end. */
  readonly loadAverage: readonly [number, number];
  /** The built ringd's node options (its shebang's). */
  readonly distNodeOptions: readonly string[];
  /** `node -e 0`: spawn → exit. */
  readonly nodeMs: Percentiles;
  /** `ringd start` from dist/: spawn → `status` answered. */
  readonly distReadyMs: Percentiles;
  /** The same without the shebang's node options (what they cost or save at start). */
  readonly distNoOptionsReadyMs: Percentiles;
  /** The same under `node --import tsx`. */
  readonly tsxReadyMs: Percentiles;
  /** p50 of distReadyMs / p50 of nodeMs. */
  readonly distOverNode: number;
  /** p50 of tsxReadyMs / p50 of distReadyMs. */
  readonly tsxOverDist: number;
}

const round1 = (x: number) => Math.round(x * 10) / 10;

/** Run the measurement; the seed is removed and every process stopped before it returns. */
export async function measureStartup(
  rounds = 15,
  say: (line: string) => void = () => {},
): Promise<StartupResults> {
  const dist = new RingdProcesses({ runner: "dist" });
  const bare = new RingdProcesses({ runner: "dist", nodeOptions: [] });
  const tsx = new RingdProcesses({ runner: "tsx" });
  const dir = await mkdtemp(join(tmpdir(), "enjin-bench-startup-"));
  const seed = join(dir, "seed");
  const loadAtStart = round1(loadavg()[0]!);
  try {
    const port = await freeNodePort(new Set());
    const init = await dist.run("ringd", ["init", "--data-dir", seed, "--listen", `127.0.0.1:${port}`]);
    if (init.code !== 0) throw new Error(`ringd init exited ${init.code}: ${init.stderr}`);
    const startToReady = async (procs: RingdProcesses): Promise<number> => {
      const t0 = performance.now();
      const child = procs.spawn("ringd", ["start", "--data-dir", seed, "--log-level", "warn"]);
      try {
        await procs.waitReady(child, seed, { timeoutMs: 60_000, intervalMs: 2 });
        return performance.now() - t0;
      } finally {
        child.kill("SIGTERM");
        await exited(child);
      }
    };
    const nodeMs: number[] = [];
    const distMs: number[] = [];
    const bareMs: number[] = [];
    const tsxMs: number[] = [];
    await startToReady(dist); // the first start after init writes more; not timed
    for (let r = 0; r < rounds; r++) {
      const t0 = performance.now();
      const code = await exited(dist.spawnNode(["-e", "0"]));
      if (code !== 0) throw new Error(`node -e 0 exited ${code}`);
      nodeMs.push(performance.now() - t0);
      distMs.push(await startToReady(dist));
      bareMs.push(await startToReady(bare));
      tsxMs.push(await startToReady(tsx));
      say(
        `round ${r + 1}: node -e 0 ${round1(nodeMs[r]!)} ms, dist ${round1(distMs[r]!)} ms, ` +
          `dist without options ${round1(bareMs[r]!)} ms, tsx ${round1(tsxMs[r]!)} ms`,
      );
    }
    const [node, d, t] = [percentiles(nodeMs), percentiles(distMs), percentiles(tsxMs)];
    return {
      rounds,
      loadAverage: [loadAtStart, round1(loadavg()[0]!)],
      distNodeOptions: dist.nodeOptions("ringd"),
      nodeMs: node,
      distReadyMs: d,
      distNoOptionsReadyMs: percentiles(bareMs),
      tsxReadyMs: t,
      distOverNode: Math.round((d.p50 / node.p50) * 100) / 100,
      tsxOverDist: Math.round((t.p50 / d.p50) * 100) / 100,
    };
  } finally {
    await Promise.all([dist.stopAll(), bare.stopAll(), tsx.stopAll()]);
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const { values } = parseArgs({
    options: { rounds: { type: "string", default: "15" }, json: { type: "boolean", default: false } },
  });
  const say = (line: string) => process.stderr.write(`${line}\n`);
  const r = await measureStartup(Number(values.rounds), say);
  say(
    `start-to-ready p50: dist ${r.distReadyMs.p50} ms (p99 ${r.distReadyMs.p99}), without its node options ` +
      `${r.distNoOptionsReadyMs.p50} ms, tsx ${r.tsxReadyMs.p50} ms, ` +
      `node -e 0 ${r.nodeMs.p50} ms; dist/node ${r.distOverNode}×, tsx/dist ${r.tsxOverDist}×; ` +
      `load ${r.loadAverage.join(" → ")}`,
  );
  if (values.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
}
