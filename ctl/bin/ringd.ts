#!/usr/bin/env node
/**
 * The ringd executable: run the ringd program on this process's arguments and exit with its code.
 * `npm run build` compiles it to dist/ctl/bin/ringd.js (package.json `bin`); from the sources it
 * runs with `node --import tsx ctl/bin/ringd.ts`.
 */
import { runCli } from "../cli.ts";
import { ringd } from "../ringd.ts";

process.exitCode = await runCli(ringd, process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
});
