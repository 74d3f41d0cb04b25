/**
 * child.* commands against a real Supervisor (LevelDB on disk, real proc children): what each action
 * answers as JSON, refusals by role and by the Supervisor's named errors (changing nothing), and logs
 * read as a tail and on from a cursor. The mesh around it is in test/integ/children.integ.ts.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Result, Role } from "../../protocol/index.ts";
import { seededRng } from "../../rings/index.ts";
import { eventually } from "../../test/support/eventually.ts";
import { systemClock } from "../clock.ts";
import { type NodeStore, openStore } from "../store/store.ts";
import { Supervisor } from "../supervise/index.ts";
import { ChildExitCode } from "./child-protocol.ts";
import { runCommand } from "./commands.ts";

const HTTP_CHILD = join(import.meta.dirname, "..", "supervise", "fixtures", "http-child.mjs");
const ID = new Uint8Array(16).fill(9);

let root: string;
let store: NodeStore;
let supervisor: Supervisor;

async function run(action: string, args: string[], roles: Role[] = ["operator"]) {
  const command = { selector: {}, action, args, nonce: ID, issuedAtMs: 0, expiresMs: 1 };
  const result: Result = await runCommand(command, ID, { supervisor, senderRoles: roles });
  return {
    exitCode: result.exitCode,
    out: JSON.parse(new TextDecoder().decode(result.stdout)),
    truncated: result.truncated,
  };
}

const create = (request: unknown) => run("child.create", [JSON.stringify(request)]);
const web = { strategy: "proc", spec: { name: "web", command: [process.execPath, HTTP_CHILD] } };

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "enjin-child-commands-"));
  store = await openStore(join(root, "state"));
  const firstPort = 45_000 + Math.floor(Math.random() * 300) * 10;
  supervisor = await Supervisor.open({
    store,
    clock: systemClock(),
    rng: seededRng(3),
    childrenDir: join(root, "children"),
    ports: { firstPort, lastPort: firstPort + 1 },
    stopTimeoutMs: 2_000,
  });
});
afterAll(async () => {
  for (const c of supervisor.list()) await supervisor.remove(c.name).catch(() => undefined);
  await supervisor.close();
  await store.close();
  await rm(root, { recursive: true, force: true });
});

describe("child commands on a node", () => {
  it("creates, lists, stops, starts, restarts and removes, answering JSON", async () => {
    const made = await create(web);
    expect(made.exitCode).toBe(ChildExitCode.Ok);
    expect(made.out.child).toMatchObject({ name: "web", strategy: "proc", phase: "running" });
    const listed = await run("child.list", [], ["viewer"]);
    expect(listed.out.children.map((c: { name: string }) => c.name)).toEqual(["web"]);
    expect((await run("child.stop", ["web"])).out.child.phase).toBe("stopped");
    expect((await run("child.start", ["web"])).out.child.phase).toBe("running");
    const pid = supervisor.get("web").pid;
    const restarted = await run("child.restart", ["web"]);
    expect(restarted.out.child.pid).not.toBe(pid);
    expect((await run("child.remove", ["web"])).out).toEqual({ removed: "web" });
    expect((await run("child.list", [])).out).toEqual({ children: [] });
  });

  it("refuses changes to a viewer, and bad requests with the Supervisor's named error, changing nothing", async () => {
    const viewer = await run("child.create", [JSON.stringify(web)], ["viewer"]);
    expect(viewer.exitCode).toBe(ChildExitCode.NotPermitted);
    expect(viewer.out.error).toMatchObject({
      name: "NotPermittedError",
      reason: "viewer-may-not-child-create",
    });
    expect(viewer.out.error.message).toMatch(/may send only child\.list, child\.logs/);
    // Reading is a viewer's right: its child.logs gets past the rule, to the Supervisor's answer (no such child).
    const logs = await run("child.logs", ["web", '{"lines":5}'], ["viewer"]);
    expect(logs.exitCode).toBe(ChildExitCode.Refused);
    expect(logs.out.error.name).not.toBe("NotPermittedError");
    const refusals: [unknown, string, RegExp][] = [
      [{ ...web, strategy: "docker" }, "UnknownStrategyError", /no strategy "docker"/],
      [
        { ...web, spec: { name: "b", command: ["/no/such/program"] } },
        "MissingBinaryError",
        /does not exist/,
      ],
      [
        { ...web, spec: { ...web.spec, limits: { memoryBytes: 1 << 26 } } },
        "UnenforceableLimitError",
        /limit/,
      ],
      [{ ...web, spec: { name: "Bad", command: ["/bin/true"] } }, "InvalidSpecError", /name/],
    ];
    for (const [request, name, message] of refusals) {
      const r = await create(request);
      expect(r.exitCode).toBe(ChildExitCode.Refused);
      expect(r.out.error.name).toBe(name);
      expect(r.out.error.message).toMatch(message);
    }
    const malformed = await run("child.create", ["{not json"]);
    expect(malformed.exitCode).toBe(ChildExitCode.BadArguments);
    expect((await run("child.stop", ["nobody"])).out.error.name).toBe("UnknownChildError");
    // Two ports in the range: the third child finds none.
    expect((await create({ ...web, spec: { ...web.spec, name: "p1" }, start: false })).exitCode).toBe(0);
    expect((await create({ ...web, spec: { ...web.spec, name: "p2" }, start: false })).exitCode).toBe(0);
    const third = await create({ ...web, spec: { ...web.spec, name: "p3" } });
    expect(third.out.error.name).toBe("PortRangeExhaustedError");
    expect((await create({ ...web, spec: { ...web.spec, name: "p1" } })).out.error.name).toBe(
      "NameTakenError",
    );
    expect(supervisor.list().map((c) => c.name)).toEqual(["p1", "p2"]);
    await supervisor.remove("p1");
    await supervisor.remove("p2");
  });

  it("tails a child's log, and reads on from a cursor", async () => {
    const made = await create({
      strategy: "proc",
      spec: { name: "talk", command: ["/bin/sh", "-c", "echo first; exec sleep 600"] },
    });
    expect(made.exitCode).toBe(0);
    await eventually(async () =>
      expect((await run("child.logs", ["talk", '{"lines":10}'])).out.text).toBe("first\n"),
    );
    // Tail and follow at once: the last lines, and the cursor at the end to read on from.
    const both = await run("child.logs", ["talk", '{"lines":10,"follow":true}'], ["viewer"]);
    expect(both.out.text).toBe("first\n");
    const start = await run("child.logs", ["talk", '{"cursor":null}'], ["viewer"]);
    expect(start.out.text).toBe("");
    expect(both.out.cursor).toEqual(start.out.cursor);
    const again = await run("child.logs", ["talk", JSON.stringify({ cursor: start.out.cursor })]);
    expect(again.out).toEqual({ text: "", cursor: start.out.cursor });
    await supervisor.restart("talk"); // writes "first" again
    await eventually(async () => {
      const next = await run("child.logs", ["talk", JSON.stringify({ cursor: start.out.cursor })]);
      expect(next.out.text).toBe("first\n");
    });
    await supervisor.remove("talk");
  });
});
