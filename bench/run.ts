/**
 * `npm run bench`: every benchmark in one run, each reported beside a baseline measured in the same
 * run (raw verify rate, published figures of Serf and memberlist for the simulated ones), with the
 * machine and the date. Prints a readable summary on stderr and the whole record as JSON on stdout
 * (`npm run -s bench > result.json`); docs/BENCHMARKS.md holds the recorded runs.
 *
 * `--quick` shortens the runs (fewer passes and trials) for a smoke check.
 */
import { cpus, totalmem } from "node:os";
import { parseArgs } from "node:util";
import { measureDetection } from "./detection.ts";
import { SERF_SIMULATOR_P999_MS, simulateDissemination } from "./dissemination.ts";
import { measureIngest } from "./ingest.ts";
import { measureVerifyRates } from "./verify.ts";

const { values } = parseArgs({ options: { quick: { type: "boolean", default: false } } });
const quick = values.quick === true;
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

const verify = await measureVerifyRates({ durationMs: quick ? 300 : 1_000 });
say(
  `verify/s (one core): sodium-native ${verify.opsPerSec.sodiumNative}, node:crypto ${verify.opsPerSec.nodeCrypto}, ` +
    `libsodium-wrappers ${verify.opsPerSec.libsodiumWrappers}`,
);

const ingest = measureIngest({ envelopes: quick ? 5_000 : 20_000, passes: quick ? 2 : 5 });
say(
  `ingest: ${ingest.ingestPerSec}/s vs raw verify ${ingest.rawVerifyPerSec}/s = ${ingest.ingestRatio} (goal ≥ 0.95); ` +
    `duplicate ${ingest.duplicatePerSec}/s = ${(ingest.duplicateCostOfVerify * 100).toFixed(2)}% of a verify (goal < 2%)`,
);

const dissemination = [];
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

const detection = [];
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

console.log(JSON.stringify({ machine, verify, ingest, dissemination, detection }, null, 2));
