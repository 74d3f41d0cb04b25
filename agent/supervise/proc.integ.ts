import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { eventually } from "../../test/support/eventually.ts";
import { prepareChildLog } from "./child-log.ts";
import type { ChildHandle, ChildSpec, StartRequest } from "./driver.ts";
import { InvalidSpecError, MissingBinaryError, SuperviseError, UnenforceableLimitError } from "./errors.ts";
import { ProcDriver, proc, readPidStat, sameProcessRunning } from "./proc.ts";

let dir: string;
let childDir: string;
let logPath: string;
const drivers: ProcDriver[] = [];
const started: ChildHandle[] = [];

function driver(options = {}): ProcDriver {
  const d = proc({ pollIntervalMs: 20, ...options })({ agentStateDir: "/nonexistent" }) as ProcDriver;
  drivers.push(d);
  return d;
}

async function start(d: ProcDriver, spec: ChildSpec, port = 45_000): Promise<ChildHandle> {
  const request: StartRequest = { spec, port, dir: childDir, logPath };
  const handle = await d.start(request);
  started.push(handle);
  return handle;
}

const alive = (pid: number) => readPidStat(pid) !== null && readPidStat(pid)!.state !== "Z";

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "enjin-proc-"));
  childDir = join(dir, "child");
  await mkdir(childDir, { mode: 0o700 });
  logPath = (await prepareChildLog(childDir)).current;
});
afterEach(async () => {
  const cleaner = new ProcDriver();
  for (const h of started.splice(0)) await cleaner.stop(h, 1_000);
  for (const d of drivers.splice(0)) await d.close();
  await rm(dir, { recursive: true, force: true });
});

describe("proc: validate", () => {
  const d = new ProcDriver();
  const cases: [string, ChildSpec, new (...args: never[]) => Error, RegExp][] = [
    ["a missing program", { name: "a", command: ["/nonexistent/bin"] }, MissingBinaryError, /does not exist/],
    [
      "a name not in PATH",
      { name: "a", command: ["no-such-program-xyz"] },
      MissingBinaryError,
      /not in PATH/,
    ],
    ["a relative path", { name: "a", command: ["./app"] }, InvalidSpecError, /absolute path or a bare name/],
    [
      "limits",
      { name: "a", command: ["/bin/true"], limits: { memoryBytes: 1 << 20 } },
      UnenforceableLimitError,
      /memoryBytes/,
    ],
    [
      "PORT in env",
      { name: "a", command: ["/bin/true"], env: { PORT: "1" } },
      InvalidSpecError,
      /env PORT is set by/,
    ],
    [
      "driver settings",
      { name: "a", command: ["/bin/true"], driver: { x: 1 } },
      InvalidSpecError,
      /no driver settings/,
    ],
    ["a bad name", { name: "A!", command: ["/bin/true"] }, InvalidSpecError, /child name/],
  ];
  for (const [what, spec, errorClass, message] of cases)
    it(`refuses ${what}`, async () => {
      await expect(d.validate(spec)).rejects.toThrow(errorClass);
      await expect(d.validate(spec)).rejects.toThrow(message);
    });

  it("accepts a program found in PATH and a non-executable file is missing", async () => {
    await d.validate({ name: "a", command: ["sh", "-c", "true"] });
    const plain = join(dir, "not-executable");
    await writeFile(plain, "#!/bin/sh\n", { mode: 0o644 });
    await expect(d.validate({ name: "a", command: [plain] })).rejects.toThrow(MissingBinaryError);
  });
});

describe("proc: running a child", () => {
  it("replaces the environment, runs in the child's directory and writes to the log", async () => {
    const d = driver();
    const h = await start(
      d,
      { name: "envy", command: ["/bin/sh", "-c", "pwd; env | sort"], env: { GREETING: "hi" } },
      45_123,
    );
    expect(await d.wait(h)).toEqual({ code: 0, signal: null });
    const out = (await readFile(logPath, "utf8")).trim().split("\n");
    expect(out[0]).toBe(childDir);
    const env = out
      .slice(1)
      .filter((l) => !l.startsWith("PWD=") && !l.startsWith("SHLVL=") && !l.startsWith("_="));
    expect(env).toEqual([
      "GREETING=hi",
      `HOME=${childDir}`,
      "PATH=/usr/local/bin:/usr/bin:/bin",
      "PORT=45123",
    ]);
  });

  it("leads its own process group; stop() ends the group, not just the leader", async () => {
    const d = driver();
    const h = await start(d, {
      name: "group",
      command: ["/bin/sh", "-c", "sleep 60 & echo $! > bg.pid; wait"],
    });
    expect(h.state.pgid).toBe(h.pid);
    const bg = Number(
      await eventually(async () => {
        const text = (await readFile(join(childDir, "bg.pid"), "utf8")).trim();
        expect(text).toMatch(/^\d+$/);
        return text;
      }),
    );
    expect(alive(bg)).toBe(true);
    const exit = await d.stop(h, 2_000);
    expect(exit.signal).toBe("SIGTERM");
    await eventually(() => expect(alive(bg)).toBe(false));
  });

  it("a child that ignores SIGTERM is killed after the timeout", async () => {
    const d = driver();
    const h = await start(d, {
      name: "stubborn",
      command: ["/bin/sh", "-c", "trap '' TERM; echo ready; while true; do sleep 0.05; done"],
    });
    await eventually(async () => expect(await readFile(logPath, "utf8")).toContain("ready"));
    expect(await d.stop(h, 200)).toEqual({ code: null, signal: "SIGKILL" });
    expect(alive(h.pid)).toBe(false);
    // Idempotent: stopping again resolves at once with the same exit.
    expect(await d.stop(h, 200)).toEqual({ code: null, signal: "SIGKILL" });
  });

  it("when the leader exits, what it left in its group is killed", async () => {
    const d = driver();
    const h = await start(d, {
      name: "leaver",
      command: ["/bin/sh", "-c", "sleep 60 & echo $! > bg.pid; sleep 0.2; exit 4"],
    });
    expect(await d.wait(h)).toEqual({ code: 4, signal: null });
    const bg = Number((await readFile(join(childDir, "bg.pid"), "utf8")).trim());
    await eventually(() => expect(alive(bg)).toBe(false));
  });
});

describe("proc: recovering a child started by an earlier agent", () => {
  it("adopts the same process, polls it, and notices it die", async () => {
    const first = driver();
    const h = await start(first, { name: "long", command: ["/bin/sleep", "60"] });
    await first.close();
    const second = driver();
    const recovered = await second.recover(JSON.parse(JSON.stringify(h)) as ChildHandle);
    expect(recovered).toEqual(h);
    const exit = second.wait(recovered!);
    process.kill(h.pid, "SIGKILL");
    expect(await exit).toEqual({
      code: null,
      signal: null,
      reason: "exited while not the agent's own child; status unknown",
    });
    expect(await second.recover(h)).toBeNull();
  });

  it("never adopts a recycled pid: another start time or another boot is not the same process", async () => {
    const d = driver();
    const h = await start(d, { name: "long", command: ["/bin/sleep", "60"] });
    const ticks = h.state.startTicks as number;
    expect(sameProcessRunning(h.pid, ticks)).toBe(true);
    const other = driver();
    expect(await other.recover({ ...h, state: { ...h.state, startTicks: ticks + 1 } })).toBeNull();
    expect(
      await other.recover({ ...h, state: { ...h.state, bootId: "00000000-0000-0000-0000-000000000000" } }),
    ).toBeNull();
    // A handle that is not a proc v1 handle is refused, not guessed at.
    await expect(other.recover({ ...h, version: 2 })).rejects.toThrow(SuperviseError);
    await expect(other.recover({ ...h, state: { pgid: "x" } })).rejects.toThrow(/malformed/);
    // Stopping through a wrong handle touches nothing.
    await other.stop({ ...h, state: { ...h.state, startTicks: ticks + 1 } }, 100);
    await other.cleanup({ ...h, state: { ...h.state, startTicks: ticks + 1 } });
    await new Promise((resolve) => setTimeout(resolve, 100)); // a stray SIGKILL would have landed
    expect(alive(h.pid)).toBe(true);
  });

  it("stop() on a recovered child ends it", async () => {
    const first = driver();
    const h = await start(first, { name: "long", command: ["/bin/sleep", "60"] });
    const second = driver();
    expect(await second.recover(h)).not.toBeNull();
    const exit = await second.stop(h, 2_000);
    expect(exit.reason).toMatch(/status unknown/);
    expect(alive(h.pid)).toBe(false);
  });
});
