/**
 * A stand-in agent for interrupted-start.integ.ts, killed in the window that test is about. It opens
 * the store and a Supervisor with the built-in drivers and creates one child; when the supervisor
 * goes to save the handle of the child's first start (the driver has started it), the agent prints
 * the handle's pid as one line on stdout and SIGKILLs itself before the write — as `kill -9` of the
 * agent at that moment would.
 *
 * argv: stateDir childrenDir firstPort lastPort requestJson
 */
import { writeSync } from "node:fs";
import { systemClock } from "../clock.ts";
import { openStore } from "../store/store.ts";
import type { ChildRecord } from "./child-record.ts";
import { type CreateChildRequest, Supervisor } from "./supervisor.ts";

const [stateDir, childrenDir, firstPort, lastPort, requestJson] = process.argv.slice(2);
if (requestJson === undefined)
  throw new Error("usage: interrupted-start.fixture.ts stateDir childrenDir firstPort lastPort requestJson");
const store = await openStore(stateDir as string);
const putJson = store.putJson.bind(store);
store.putJson = async (name, key, value) => {
  const handle = (value as Partial<ChildRecord>).handle;
  if (name === "children" && handle !== undefined && handle !== null) {
    writeSync(1, `${handle.pid}\n`);
    process.kill(process.pid, "SIGKILL");
  }
  return putJson(name, key, value);
};
const supervisor = await Supervisor.open({
  store,
  clock: systemClock(),
  childrenDir: childrenDir as string,
  ports: { firstPort: Number(firstPort), lastPort: Number(lastPort) },
});
await supervisor.create(JSON.parse(requestJson) as CreateChildRequest);
throw new Error("the supervisor saved a handle without going through store.putJson");
