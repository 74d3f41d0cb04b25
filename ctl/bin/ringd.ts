#!/usr/bin/env -S node --max-semi-space-size=1 --no-concurrent-recompilation
/**
 * The ringd executable: run the ringd program on this process's arguments and exit with its code.
 * `npm run build` compiles it to dist/ctl/bin/ringd.js (package.json `bin`); from the sources it
 * runs with `node --import tsx ctl/bin/ringd.ts`.
 *
 * The shebang caps V8's young generation at 1 MiB per semi-space (V8 grows it to 8 MiB when a
 * burst of allocations survives, as when ten nodes join at once, and keeps it): a joined node's
 * private memory falls from ~27-29 to ~25 MiB and its worst from ~38 to ~28 MiB, with no change
 * in exec round trips or the ingest rate. It costs ~25-60 ms at start: with a heap flag node compiles
 * its own built-in modules instead of using their code cache (docs/BENCHMARKS.md, "Built ringd").
 * `--no-concurrent-recompilation` has TurboFan optimise hot functions on the main thread instead of
 * a worker thread: what the compiler allocates is then reused by the main thread's malloc rather than
 * kept in a worker's own arena. An idle joined node's private memory falls by ~0.8 MiB (17.2 against
 * 18.0 MiB; in a 20-node mesh 22.8-23.0 against 23.6), with no change in the ingest rate, exec round
 * trips or start-to-ready (docs/BENCHMARKS.md, "Idle memory").
 * The flags cannot be set once V8 is running; scripts/ringd-process.ts reads them from this line, and
 * an operator who runs `node dist/ctl/bin/ringd.js` directly passes them the same way.
 */
import { runCli } from "../cli.ts";
import { ringd } from "../ringd.ts";

process.exitCode = await runCli(ringd, process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
});
