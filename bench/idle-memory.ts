/**
 * Idle memory of joined ringd processes, variant by variant (issue 3's memory goals): a quicker loop
 * than bench/mesh.ts for trying node options, environment variables or another build. One ZeroMQ
 * seed (this checkout's build, its shebang's options), then `per` joined ring-1 nodes for each
 * variant, started round-robin so that the machine's load falls on each alike, all in one mesh.
 * After `idleMs` idle: each process's VmRSS, private (Private_Clean + Private_Dirty of smaps_rollup)
 * and Pss, with the private memory split by where it lives (V8's heap pages, malloc's brk heap, other
 * anonymous memory, files), beside an idle `node` started in the same run.
 *
 * With `--commands N`, `ringctl exec -- true` to every node N times before the idle wait.
 *
 * `npx tsx bench/idle-memory.ts [--per 3] [--idle-ms 10000] [--commands 0] [--variant 'NAME=WORD …']…` (needs a
 * fresh `npm run build`). The first variant, "shebang", is ringd as built. A variant's words: `--x`
 * is a node option (the variant's options replace the shebang's), `VAR=value` an environment
 * variable, `@DIR` the build of another checkout (e.g. a `git worktree` of the commit before a
 * change, built). Prints a summary on stderr and the JSON record on stdout.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { RingdProcesses } from "../scripts/ringd-process.ts";
import { exited, freeNodePort, type Memory, memoryOf, sleep } from "./mesh-support.ts";

/** Private memory by where it lives (MiB), from /proc/PID/smaps. */
export interface PrivateBreakdown {
  /** Anonymous mappings below 0x7f00_0000_0000: V8's heap pages. */
  readonly v8HeapMiB: number;
  /** `[heap]`: glibc malloc's main arena (LevelDB, ZeroMQ, V8's compiler zones on the main thread). */
  readonly brkMiB: number;
  /** Other anonymous mappings: malloc's per-thread arenas, thread stacks, V8's builtins code. */
  readonly otherAnonMiB: number;
  /** Private pages of mapped files (node, addons, libraries). */
  readonly filesMiB: number;
}

/** One process's figures. */
export type IdleMemory = Memory & PrivateBreakdown;

/** A way to run ringd. */
export interface IdleVariant {
  readonly name: string;
  /** Node options, in place of the shebang's. */
  readonly nodeOptions?: readonly string[];
  /** `VAR=value` settings, given through `env`. */
  readonly env?: readonly string[];
  /** Another checkout whose dist/ is run. */
  readonly root?: string;
}

/** The median of each figure over a variant's processes, and the range of private memory. */
export interface IdleVariantResult extends IdleVariant, IdleMemory {
  readonly privateRangeMiB: readonly [number, number];
}

/** One run's record. */
export interface IdleMemoryResults {
  readonly per: number;
  readonly idleMs: number;
  /** 1-minute load average at the start and at the end. */
  readonly loadAverage: readonly [number, number];
  readonly idleNode: IdleMemory;
  readonly seed: IdleMemory;
  readonly variants: readonly IdleVariantResult[];
}

/** The private memory of `pid` by where it lives. */
export async function privateBreakdownOf(pid: number): Promise<PrivateBreakdown> {
  const kib = { v8HeapMiB: 0, brkMiB: 0, otherAnonMiB: 0, filesMiB: 0 };
  let where: keyof PrivateBreakdown = "otherAnonMiB";
  for (const line of (await readFile(`/proc/${pid}/smaps`, "utf8")).split("\n")) {
    const head = /^([0-9a-f]+)-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head !== null) {
      const name = head[2]!;
      if (name === "[heap]") where = "brkMiB";
      else if (name !== "" && !name.startsWith("[")) where = "filesMiB";
      else if (name === "" && Number.parseInt(head[1]!, 16) < 0x7f00_0000_0000) where = "v8HeapMiB";
      else where = "otherAnonMiB";
      continue;
    }
    const field = /^Private_(?:Clean|Dirty):\s+(\d+) kB/.exec(line);
    if (field !== null) kib[where] += Number(field[1]);
  }
  const mib = (k: number) => Math.round((k / 1024) * 10) / 10;
  return {
    v8HeapMiB: mib(kib.v8HeapMiB),
    brkMiB: mib(kib.brkMiB),
    otherAnonMiB: mib(kib.otherAnonMiB),
    filesMiB: mib(kib.filesMiB),
  };
}

const idleMemoryOf = async (pid: number): Promise<IdleMemory> => ({
  ...(await memoryOf(pid)),
  ...(await privateBreakdownOf(pid)),
});

const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const round1 = (x: number) => Math.round(x * 10) / 10;

/** Run the measurement; every process is stopped and the temp dir removed before it returns. */
export async function measureIdleMemory(
  variants: readonly IdleVariant[],
  opts: { readonly per?: number; readonly idleMs?: number; readonly commands?: number } = {},
): Promise<IdleMemoryResults> {
  const per = opts.per ?? 3;
  const idleMs = opts.idleMs ?? 10_000;
  const base = new RingdProcesses({ runner: "dist" });
  const procsOf = variants.map(
    (v) =>
      new RingdProcesses({
        runner: "dist",
        root: v.root ?? base.root,
        ...(v.nodeOptions === undefined ? {} : { nodeOptions: v.nodeOptions }),
      }),
  );
  const dir = await mkdtemp(join(tmpdir(), "enjin-bench-idle-memory-"));
  const taken = new Set<number>();
  const loadAtStart = round1(loadavg()[0]!);
  try {
    const seedDir = join(dir, "seed");
    const listen = async () => `127.0.0.1:${await freeNodePort(taken)}`;
    const init = await base.run("ringd", ["init", "--data-dir", seedDir, "--listen", await listen()]);
    if (init.code !== 0) throw new Error(`ringd init exited ${init.code}: ${init.stderr}`);
    const seed = base.spawn("ringd", ["start", "--data-dir", seedDir, "--log-level", "warn"]);
    await base.waitReady(seed, seedDir);
    const uses = String(per * variants.length);
    const tokenArgs = ["create", "--data-dir", seedDir, "--ring", "1", "--tier", "web", "--uses", uses];
    const token = await base.run("ringctl", ["token", ...tokenArgs, "--ttl", "1h"]);
    if (token.code !== 0) throw new Error(`ringctl token create exited ${token.code}: ${token.stderr}`);
    const idle = base.spawnNode(["-e", "setInterval(() => {}, 1000)"]);
    const started: { readonly variant: number; readonly pid: number }[] = [];
    let n = 0;
    for (let k = 0; k < per; k++)
      for (const [i, variant] of variants.entries()) {
        const procs = procsOf[i]!;
        const data = join(dir, `n${++n}`);
        const env = variant.env ?? [];
        const prefix = env.length > 0 ? { prefix: ["env", ...env] } : {};
        const joinArgs = ["join", token.stdout.trim(), "--data-dir", data, "--listen", await listen()];
        const joiner = procs.spawn("ringd", joinArgs, prefix);
        const code = await exited(joiner);
        if (code !== 0) throw new Error(`ringd join (${variant.name}) exited ${code}: ${procs.tail(joiner)}`);
        const child = procs.spawn("ringd", ["start", "--data-dir", data, "--log-level", "warn"], prefix);
        await procs.waitReady(child, data);
        started.push({ variant: i, pid: child.pid! });
      }
    for (let c = 0; c < (opts.commands ?? 0); c++) {
      const exec = await base.run("ringctl", ["exec", "--data-dir", seedDir, "--", "true"]);
      if (exec.code !== 0) throw new Error(`ringctl exec exited ${exec.code}: ${exec.stderr}`);
    }
    await sleep(idleMs);
    const results: IdleVariantResult[] = [];
    for (const [i, variant] of variants.entries()) {
      const ms = await Promise.all(started.filter((s) => s.variant === i).map((s) => idleMemoryOf(s.pid)));
      const of = (f: keyof IdleMemory) => median(ms.map((m) => m[f]));
      const privates = ms.map((m) => m.privateMiB);
      results.push({
        ...variant,
        rssMiB: of("rssMiB"),
        privateMiB: of("privateMiB"),
        pssMiB: of("pssMiB"),
        v8HeapMiB: of("v8HeapMiB"),
        brkMiB: of("brkMiB"),
        otherAnonMiB: of("otherAnonMiB"),
        filesMiB: of("filesMiB"),
        privateRangeMiB: [Math.min(...privates), Math.max(...privates)],
      });
    }
    return {
      per,
      idleMs,
      loadAverage: [loadAtStart, round1(loadavg()[0]!)],
      idleNode: await idleMemoryOf(idle.pid!),
      seed: await idleMemoryOf(seed.pid!),
      variants: results,
    };
  } finally {
    await Promise.all(procsOf.map((p) => p.stopAll()));
    await base.stopAll();
    await rm(dir, { recursive: true, force: true });
  }
}

/** A `--variant 'NAME=WORD …'` argument. */
export function parseVariant(arg: string): IdleVariant {
  const eq = arg.indexOf("=");
  const name = eq < 0 ? arg : arg.slice(0, eq);
  const words =
    eq < 0
      ? []
      : arg
          .slice(eq + 1)
          .split(/\s+/)
          .filter(Boolean);
  const root = words.find((w) => w.startsWith("@"))?.slice(1);
  return {
    name,
    nodeOptions: words.filter((w) => w.startsWith("-")),
    env: words.filter((w) => !w.startsWith("-") && !w.startsWith("@")),
    ...(root === undefined ? {} : { root }),
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const { values } = parseArgs({
    options: {
      per: { type: "string", default: "3" },
      "idle-ms": { type: "string", default: "10000" },
      variant: { type: "string", multiple: true, default: [] },
      commands: { type: "string", default: "0" },
    },
  });
  const record = await measureIdleMemory([{ name: "shebang" }, ...values.variant.map(parseVariant)], {
    per: Number(values.per),
    idleMs: Number(values["idle-ms"]),
    commands: Number(values.commands),
  });
  const row = (name: string, m: IdleMemory) =>
    `${name.padEnd(14)} RSS ${m.rssMiB}  private ${m.privateMiB}  Pss ${m.pssMiB} MiB | private: V8 heap ${m.v8HeapMiB}, brk ${m.brkMiB}, other anon ${m.otherAnonMiB}, files ${m.filesMiB}`;
  const lines = [
    `load ${record.loadAverage.join(" → ")}, ${record.per} per variant, ${record.idleMs} ms idle`,
    row("idle node", record.idleNode),
    row("seed", record.seed),
    ...record.variants.map((v) => `${row(v.name, v)} (private ${v.privateRangeMiB.join("–")})`),
  ];
  process.stderr.write(`${lines.join("\n")}\n`);
  process.stdout.write(`${JSON.stringify(record, null, 2)}\n`);
}
