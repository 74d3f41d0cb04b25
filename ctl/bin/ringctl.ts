#!/usr/bin/env node
/**
 * The ringctl executable: run the ringctl program on this process's arguments and exit with its
 * code. `npm run build` compiles it to dist/ctl/bin/ringctl.js (package.json `bin`); from the
 * sources it runs with `node --import tsx ctl/bin/ringctl.ts`.
 */
import { runCli } from "../cli.ts";
import { ringctl } from "../ringctl.ts";

process.exitCode = await runCli(ringctl, process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
});
