/**
 * `npm run bench`: every benchmark in one run, each reported beside a baseline measured in the same
 * run (raw verify rate, published figures of Serf and memberlist for the simulated ones), with the
 * machine and the date. Prints a readable summary on stderr and the whole record as JSON on stdout
 * (`npm run -s bench > result.json`); docs/BENCHMARKS.md holds the recorded runs.
 *
 * `--quick` shortens the runs (fewer passes and trials) for a smoke check.
 *
 * `--mesh` adds the real-mesh benchmark (bench/mesh.ts: real ringd processes on 127.0.0.1; minutes,
 * and about 100 MB of memory per node): `--mesh-nodes 20,100` (default 20) and
 * `--mesh-transports zeromq,nats` (default zeromq) choose the meshes; `--mesh-only` skips the rest.
 *
 * `--supervise` adds the supervision benchmarks (issue 4; as root): start-to-ready of each strategy
 * (proc, unix-user, jail, vm) beside a plain spawn or a bare qemu measured in the same run. Each is
 * its own script (bench/supervise-*.ts, runnable alone) and runs here as a child process, so a
 * strategy that cannot run on this machine is reported as failed without stopping the rest.
 */
import { execFile } from "node:child_process";
import { cpus, totalmem } from "node:os";
import { parseArgs } from "node:util";
import { measureDetection } from "./detection.ts";
import { SERF_SIMULATOR_P999_MS, simulateDissemination } from "./dissemination.ts";
import { measureIngest } from "./ingest.ts";
import { type MeshResults, measureMesh } from "./mesh.ts";
import { measureVerifyRates } from "./verify.ts";

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    mesh: { type: "boolean", default: false },
    "mesh-only": { type: "boolean", default: false },
    "mesh-nodes": { type: "string", default: "20" },
    "mesh-transports": { type: "string", default: "zeromq" },
    supervise: { type: "boolean", default: false },
  },
});
const quick = values.quick === true;
const meshOnly = values["mesh-only"] === true;
const meshNodes = values["mesh-nodes"].split(",").map(Number);
const meshTransports = values["mesh-transports"].split(",");
if (meshNodes.some((n) => !Number.isInteger(n) || n < 1 || n > 200))
  throw new Error(`--mesh-nodes takes whole numbers from 1 to 200, not "${values["mesh-nodes"]}"`);
if (meshTransports.some((t) => t !== "zeromq" && t !== "nats"))
  throw new Error(`--mesh-transports takes zeromq and/or nats, not "${values["mesh-transports"]}"`);
const say = (line: string) => process.stderr.write(`${line}\n`);

const machine = {
  date: new Date().toISOString(),
  cpu: cpus()[0]?.model ?? "unknown",
  cores: cpus().length,
  memoryGiB: Math.round(totalmem() / 2 ** 30),
  node: process.version,
};
say(
  `enjin benchmarks — ${machine.date}, ${machine.cpu} × ${machine.cores}, ${machine.memoryGiB} GiB, Node ${machine.node}`,
);

let verify: Awaited<ReturnType<typeof measureVerifyRates>> | undefined;
let ingest: ReturnType<typeof measureIngest> | undefined;
const dissemination = [];
const detection = [];
if (!meshOnly) {
  verify = await measureVerifyRates({ durationMs: quick ? 300 : 1_000 });
  say(
    `verify/s (one core): sodium-native ${verify.opsPerSec.sodiumNative}, node:crypto ${verify.opsPerSec.nodeCrypto}, ` +
      `libsodium-wrappers ${verify.opsPerSec.libsodiumWrappers}`,
  );

  ingest = measureIngest({ envelopes: quick ? 5_000 : 20_000, passes: quick ? 2 : 5 });
  say(
    `ingest: ${ingest.ingestPerSec}/s vs raw verify ${ingest.rawVerifyPerSec}/s = ${ingest.ingestRatio} ` +
      `(CPU time ${ingest.ingestRatioCpu}; by frames ${ingest.ingestFrameRatio}, CPU ${ingest.ingestFrameRatioCpu}; goal ≥ 0.95); ` +
      `duplicate ${ingest.duplicatePerSec}/s = ${(ingest.duplicateCostOfVerify * 100).toFixed(2)}% of a verify (goal < 2%)`,
  );

  for (const nodes of [1_000, 10_000]) {
    for (const mode of ["eager", "lazy"] as const) {
      const r = simulateDissemination({ nodes, mode });
      dissemination.push({ ...r, serfP999Ms: SERF_SIMULATOR_P999_MS[nodes] ?? null });
      say(
        `dissemination ${nodes} nodes, ${mode}: 99.9% in ${r.p999Ms} ms (Serf simulator ${SERF_SIMULATOR_P999_MS[nodes]} ms), ` +
          `all in ${r.allMs} ms, ${r.verifications} verifications, ${r.duplicates} duplicates dropped unverified`,
      );
    }
  }

  const trials: [number, number][] = quick
    ? [[100, 1]]
    : [
        [100, 3],
        [1_000, 1],
      ];
  for (const [nodes, count] of trials) {
    for (let seed = 1; seed <= count; seed++) {
      const r = await measureDetection(nodes, seed);
      detection.push(r);
      say(
        `detection ${nodes} nodes (seed ${seed}): first suspect ${r.firstSuspectMs} ms, first dead ${r.firstDeadMs} ms, ` +
          `dead everywhere ${r.deadEverywhereMs} ms (memberlist suspicion ${r.memberlistSuspicionMs} ms), false deaths ${r.falseDeaths}`,
      );
    }
  }
}

const mesh: MeshResults[] = [];
if (values.mesh === true || meshOnly) {
  for (const transport of meshTransports as ("zeromq" | "nats")[]) {
    for (const nodes of meshNodes) {
      say(`real mesh: ${nodes} ringd nodes and a seed over ${transport} ...`);
      const r = await measureMesh({ nodes, transport, commands: quick ? 10 : 30, say: (l) => say(`  ${l}`) });
      mesh.push(r);
      say(`  ${JSON.stringify(r)}`); // kept even if a later mesh fails
      say(
        `real mesh ${nodes} nodes over ${transport}: exec round trip p50 ${r.exec.roundTripMs.p50} ms p99 ${r.exec.roundTripMs.p99} ms ` +
          `(raw NATS fan-out p50 ${r.exec.natsFanoutMs.p50} ms); join exit p50 ${r.join.joinExitMs.p50} ms; ` +
          `idle RSS ${r.memory.ringdMedian.rssMiB} MiB, private ${r.memory.ringdMedian.privateMiB} MiB; ` +
          `start-to-ready p50 ${r.startToReady.ringdMs.p50} ms; load average ${r.loadAverage.join(" → ")}`,
      );
    }
  }
}

/** The supervision benchmarks and their arguments (quick runs are shorter). */
const SUPERVISE_BENCHES: readonly [string, string[], string[]][] = [
  [
    "proc",
    ["--expose-gc", "bench/supervise-proc.ts"],
    ["--runs", "5", "--idle-children", "20", "--idle-ms", "2000"],
  ],
  ["unix-user", ["bench/supervise-unix-user.ts"], ["--runs", "5"]],
  ["jail", ["bench/supervise-jail.ts"], ["--runs", "5"]],
  ["vm", ["bench/supervise-vm.ts"], ["--boots", "2", "--plain", "1"]],
];
const supervise: Record<string, unknown> = {};
if (values.supervise === true) {
  for (const [strategy, args, quickArgs] of SUPERVISE_BENCHES) {
    say(`supervision: ${strategy} ...`);
    supervise[strategy] = await new Promise((resolve) => {
      execFile(
        process.execPath,
        ["--import", "tsx", ...args, ...(quick ? quickArgs : [])],
        { maxBuffer: 16 * 1024 * 1024, timeout: 20 * 60_000 },
        (err, stdout, stderr) => {
          process.stderr.write(stderr);
          if (err) resolve({ failed: err.message.split("\n")[0] });
          else resolve(JSON.parse(stdout));
        },
      );
    });
  }
}

console.log(JSON.stringify({ machine, verify, ingest, dissemination, detection, mesh, supervise }, null, 2));
