/**
 * The ringd executable: run the ringd program on this process's arguments and exit with its code.
 * Run with `node --import tsx ctl/bin/ringd.ts` until a build step exists.
 */
import { runCli } from "../cli.ts";
import { ringd } from "../ringd.ts";

process.exitCode = await runCli(ringd, process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
});
