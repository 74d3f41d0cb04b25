/**
 * A stand-in agent process for jail.integ.ts: starts one jail with the jail driver, prints its handle
 * as one JSON line on stdout, then idles until it is killed — so the test can kill "the agent" and
 * recover the jail from a fresh driver, as a restarted agent would.
 *
 * argv: agentStateDir dir logPath port userPrefix specJson
 */
import type { ChildSpec } from "./driver.ts";
import { jail } from "./jail.ts";

const [agentStateDir, dir, logPath, port, userPrefix, specJson] = process.argv.slice(2);
if (specJson === undefined)
  throw new Error("usage: jail-restart.fixture.ts stateDir dir log port prefix specJson");
const driver = jail({ userPrefix: userPrefix as string })({ agentStateDir: agentStateDir as string });
const handle = await driver.start({
  spec: JSON.parse(specJson) as ChildSpec,
  port: Number(port),
  dir: dir as string,
  logPath: logPath as string,
});
process.stdout.write(`${JSON.stringify(handle)}\n`);
setInterval(() => {}, 1 << 30);
