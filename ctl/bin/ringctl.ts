/**
 * The ringctl executable: run the ringctl program on this process's arguments and exit with its
 * code. Run with `node --import tsx ctl/bin/ringctl.ts` until a build step exists.
 */
import { runCli } from "../cli.ts";
import { ringctl } from "../ringctl.ts";

process.exitCode = await runCli(ringctl, process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
});
