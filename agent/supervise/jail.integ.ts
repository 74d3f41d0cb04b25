/**
 * The jail driver against real bubblewrap, as root: what a jailed child can and cannot reach, that it
 * runs as its own unprivileged host uid, that stop and cleanup leave nothing behind, that a jail
 * outlives a killed agent and is recovered, and that killing its shim takes it down.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually } from "../../test/support/eventually.ts";
import { freePort } from "../../test/support/free-port.ts";
import type { ChildHandle, ChildSpec, Driver } from "./driver.ts";
import {
  HandleStateError,
  InvalidSpecError,
  MissingBinaryError,
  SupervisorConfigError,
  UnenforceableLimitError,
} from "./errors.ts";
import { jail } from "./jail.ts";
import { parsePasswd } from "./unix-user-account.ts";

const PREFIX = "enjj-";
const BWRAP = "/usr/bin/bwrap";

let base: string;
let state: string;
let driver: Driver;
const handles: Array<{ driver: Driver; handle: ChildHandle }> = [];
const fixtures: ChildProcess[] = [];

/** The probe the jailed child runs: it records what it can reach, then serves HTTP on PORT. */
const PROBE = `
import fs from "node:fs"; import os from "node:os"; import http from "node:http";
const cfg = JSON.parse(process.env.PROBE);
const tryOp = (f) => { try { f(); return "ok"; } catch (e) { return e.code ?? String(e); } };
const r = {};
r.uid = process.getuid(); r.hostname = os.hostname(); r.self = process.pid;
r.readBoundSecret = tryOp(() => fs.readFileSync(cfg.boundSecret));
r.boundSecretExists = fs.existsSync(cfg.boundSecret);
r.hiddenSecretExists = fs.existsSync(cfg.hiddenSecret);
r.readState = tryOp(() => fs.readFileSync(cfg.stateFile));
r.writes = Object.fromEntries(["/x", "/usr/x", "/etc/x", "/bin/x", cfg.boundDir + "/x"].map((p) => [p, tryOp(() => fs.writeFileSync(p, "x"))]));
r.writeOwn = tryOp(() => fs.writeFileSync("own.txt", "x"));
r.writeTmp = tryOp(() => fs.writeFileSync("/tmp/" + cfg.tmpMarker, "x"));
r.pids = fs.readdirSync("/proc").filter((n) => /^[0-9]+$/.test(n)).map(Number).sort((a, b) => a - b);
r.pid1 = fs.readFileSync("/proc/1/comm", "utf8").trim();
r.hostPidVisible = fs.existsSync("/proc/" + cfg.hostPid);
r.envKeys = Object.keys(process.env).sort();
r.passwd = fs.readFileSync("/etc/passwd", "utf8");
r.readShadow = tryOp(() => fs.readFileSync("/etc/shadow"));
r.limits = fs.readFileSync("/proc/self/limits", "utf8");
fs.writeFileSync("result.json", JSON.stringify(r));
http.createServer((q, s) => s.end("jail " + os.hostname())).listen(Number(process.env.PORT), "127.0.0.1");
`;

/** A fresh child directory (0700 root, as the supervisor makes it) and its log's path outside it. */
async function childDir(name: string): Promise<string> {
  const dir = join(base, "children", name);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFile(join(dir, "probe.mjs"), PROBE, { mode: 0o644 });
  return dir;
}
const logOf = (name: string) => join(base, "logs", `${name}.log`);

async function startProbe(name: string, over: Partial<ChildSpec> = {}) {
  const dir = await childDir(name);
  const port = await freePort();
  const marker = `enjj-marker-${process.pid}-${name}`;
  const probeCfg = {
    boundSecret: join(base, "shared", "root-only"),
    boundDir: join(base, "shared"),
    hiddenSecret: join(base, "hidden", "root-only"),
    stateFile: join(state, "db"),
    hostPid: process.pid,
    tmpMarker: marker,
  };
  const spec: ChildSpec = {
    name,
    command: ["node", "probe.mjs"],
    env: { PROBE: JSON.stringify(probeCfg) },
    driver: { roBinds: [join(base, "shared")] },
    ...over,
  };
  const handle = await driver.start({ spec, port, dir, logPath: logOf(name) });
  handles.push({ driver, handle });
  const body = await eventually(
    async () => {
      const res = await fetch(`http://127.0.0.1:${port}/`);
      return res.text();
    },
    { timeoutMs: 20_000, intervalMs: 50 },
  );
  const result = JSON.parse(await readFile(join(dir, "result.json"), "utf8"));
  return { handle, dir, port, body, result, marker };
}

/**
 * Live host pids in the same pid namespace as `initPid` (the jail's pid 1), itself included.
 * Zombies do not count: bwrap's outer process exits without reaping the jail's pid 1, which the
 * host's init then reaps (at once under systemd; this test machine's init takes a second or two).
 */
async function jailPids(initPid: number): Promise<number[]> {
  const ns = await readlink(`/proc/${initPid}/ns/pid`).catch(() => null);
  if (ns === null) return [];
  const out: number[] = [];
  for (const e of await readdir("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    if ((await readlink(`/proc/${e}/ns/pid`).catch(() => null)) !== ns) continue;
    const stat = await readFile(`/proc/${e}/stat`, "utf8").catch(() => "");
    const st = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    if (st !== "Z" && st !== "X" && st !== "") out.push(Number(e));
  }
  return out;
}

/** The real, effective, saved and fs uids of a host process. */
async function hostUids(pid: number): Promise<number[]> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const line = status.split("\n").find((l) => l.startsWith("Uid:")) ?? "";
  return line.slice(4).trim().split(/\s+/).map(Number);
}

/** Live (non-zombie) host processes whose real uid is `uid`. */
async function processesOf(uid: number): Promise<number[]> {
  const out: number[] = [];
  for (const e of await readdir("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    const status = await readFile(`/proc/${e}/status`, "utf8").catch(() => "");
    if (/^State:\s+[ZX]/m.test(status)) continue;
    const uidLine = status.split("\n").find((l) => l.startsWith("Uid:"));
    if (uidLine !== undefined && Number(uidLine.slice(4).trim().split(/\s+/)[0]) === uid) out.push(Number(e));
  }
  return out;
}

const users = async () => parsePasswd(await readFile("/etc/passwd", "utf8"));
const userOf = async (name: string) => (await users()).find((u) => u.name === `${PREFIX}${name}`);

beforeAll(async () => {
  if (process.getuid?.() !== 0)
    throw new Error("jail.integ.ts must run as root (it creates system users and drops to them)");
  if (!existsSync(BWRAP)) throw new Error(`${BWRAP} is missing: apt-get install bubblewrap`);
  base = await mkdtemp("/tmp/enjj-jail-");
  await chmod(base, 0o755);
  state = join(base, "state");
  // The worst case: a state directory others could read. The jail must still not show it.
  await mkdir(state, { mode: 0o755 });
  await writeFile(join(state, "db"), "agent state", { mode: 0o644 });
  await mkdir(join(base, "children"), { mode: 0o711 });
  await mkdir(join(base, "logs"), { mode: 0o700 });
  for (const d of ["shared", "hidden"]) {
    await mkdir(join(base, d), { mode: 0o755 });
    await writeFile(join(base, d, "root-only"), "top secret", { mode: 0o600 });
    await writeFile(join(base, d, "tool.sh"), "#!/bin/sh\necho tool\n", { mode: 0o755 });
  }
  driver = jail({ userPrefix: PREFIX, pollIntervalMs: 50 })({ agentStateDir: state });
});

afterAll(async () => {
  for (const f of fixtures) if (f.exitCode === null && f.signalCode === null) f.kill("SIGKILL");
  for (const { driver: d, handle } of handles) {
    await d.stop(handle, 1_000, "SIGKILL").catch(() => {});
    await d.cleanup(handle).catch(() => {});
  }
  // Any user of ours a failed test left behind (only ours: prefix and the driver's marker).
  for (const u of await users())
    if (u.name.startsWith(`${PREFIX}jt-`) && u.gecos.startsWith("enjin child "))
      await new Promise((r) => spawn("/usr/sbin/userdel", [u.name], { stdio: "ignore" }).once("exit", r));
  if (base !== undefined) await rm(base, { recursive: true, force: true });
});

describe("jail driver (real bwrap, as root)", () => {
  it("confines the child: no root-only files, no writes outside its directory, private /tmp, own pid namespace and hostname", async () => {
    process.env.ENJJ_AGENT_ONLY = "must not leak";
    const { handle, dir, body, result: r, marker } = await startProbe("jt-probe");
    delete process.env.ENJJ_AGENT_ONLY;
    expect(body).toBe("jail jt-probe");
    expect(r.hostname).toBe("jt-probe");

    // Root-only files: unreadable where a bind shows them, absent where none does; agent state absent.
    expect(r.boundSecretExists).toBe(true);
    expect(r.readBoundSecret).toBe("EACCES");
    expect(r.hiddenSecretExists).toBe(false);
    expect(r.readState).toBe("ENOENT");
    expect(r.readShadow).toBe("ENOENT");
    expect(r.passwd).not.toContain("root:");

    // Writes: only its own directory and its private /tmp.
    for (const [path, outcome] of Object.entries(r.writes as Record<string, string>))
      expect(["EROFS", "EACCES", "ENOENT"], `${path}: ${outcome}`).toContain(outcome);
    expect(r.writeOwn).toBe("ok");
    expect(await readFile(join(dir, "own.txt"), "utf8")).toBe("x");
    expect(r.writeTmp).toBe("ok");
    expect(existsSync(`/tmp/${marker}`)).toBe(false);
    expect(existsSync(join(base, "shared", "x"))).toBe(false);

    // Processes: its pid namespace holds bwrap's init (pid 1) and itself, nothing of the host.
    expect(r.pid1).toBe("bwrap");
    expect(r.pids).toEqual([1, r.self]);
    expect(r.hostPidVisible).toBe(false);

    // Environment: replaced, not inherited from the agent (bwrap adds PWD for its --chdir).
    expect(r.envKeys).toEqual(["HOME", "PATH", "PORT", "PROBE", "PWD"]);

    // Host view: every process of the jail runs as the driver's unprivileged user, never root.
    const user = await userOf("jt-probe");
    expect(user).toBeDefined();
    expect(user?.uid).not.toBe(0);
    expect(r.uid).toBe(user?.uid);
    const initPid = handle.state.initPid as number;
    const pids = await jailPids(initPid);
    expect(pids.length).toBe(2);
    for (const pid of pids) expect(await hostUids(pid)).toEqual([user?.uid, user?.uid, user?.uid, user?.uid]);
  });

  it("covers the agent's state directory with an empty tmpfs when a bind would show it", async () => {
    const { result: r } = await startProbe("jt-shown", { driver: { roBinds: [base] } });
    expect(r.readState).toBe("ENOENT"); // readable by others on the host, absent inside
    expect(r.hiddenSecretExists).toBe(true); // base is bound, so its files are there ...
    expect(r.readBoundSecret).toBe("EACCES"); // ... but root-only ones stay unreadable
    expect(r.writeOwn).toBe("ok");
  });

  it("applies rlimits for openFiles and pids", async () => {
    const { result: r } = await startProbe("jt-limits", { limits: { openFiles: 64, pids: 20 } });
    expect(r.limits).toMatch(/Max open files\s+64\s+64/);
    expect(r.limits).toMatch(/Max processes\s+22\s+22/);
  });

  it("stop sends SIGTERM to the child, and cleanup leaves no process, user or ownership behind", async () => {
    const { handle, dir } = await startProbe("jt-stop");
    const uid = (await userOf("jt-stop"))?.uid as number;
    expect((await processesOf(uid)).length).toBeGreaterThan(0);
    const exit = await driver.stop(handle, 10_000);
    expect(exit).toMatchObject({ code: null, signal: "SIGTERM" });
    expect(await processesOf(uid)).toEqual([]);
    expect(await jailPids(handle.state.initPid as number)).toEqual([]);
    expect(await driver.stop(handle, 10_000)).toEqual(exit); // idempotent
    await driver.cleanup(handle);
    expect(await userOf("jt-stop")).toBeUndefined();
    expect((await stat(dir)).uid).toBe(0);
  });

  it("stop escalates to SIGKILL when the child ignores the signal", async () => {
    const dir = await childDir("jt-stubborn");
    const spec = {
      name: "jt-stubborn",
      command: ["/bin/sh", "-c", "trap '' TERM; echo trapped; while :; do sleep 1; done"],
    };
    const handle = await driver.start({ spec, port: await freePort(), dir, logPath: logOf("jt-stubborn") });
    handles.push({ driver, handle });
    // Only once the shell ignores SIGTERM: start resolves before the child has run any code.
    await eventually(async () => expect(await readFile(logOf("jt-stubborn"), "utf8")).toContain("trapped"));
    const exit = await driver.stop(handle, 300);
    expect(exit).toMatchObject({ code: null, signal: "SIGKILL" });
    expect(await jailPids(handle.state.initPid as number)).toEqual([]);
  });

  it("dies with its parent: killing the shim takes the whole jail down", async () => {
    const dir = await childDir("jt-orphan");
    const spec = { name: "jt-orphan", command: ["/bin/sleep", "600"] };
    const handle = await driver.start({ spec, port: await freePort(), dir, logPath: logOf("jt-orphan") });
    handles.push({ driver, handle });
    const initPid = handle.state.initPid as number;
    await eventually(async () => expect((await jailPids(initPid)).length).toBe(2));
    process.kill(handle.pid, "SIGKILL");
    expect(await driver.wait(handle)).toMatchObject({ code: null, signal: "SIGKILL" });
    await eventually(async () => expect(await jailPids(initPid)).toEqual([]), { timeoutMs: 10_000 });
    expect(await driver.recover(handle)).toBeNull();
  });

  it("outlives a killed agent, closes fds the agent leaked, and is recovered and stopped by a new driver", async () => {
    const name = "jt-restart";
    const dir = await childDir(name);
    const port = await freePort();
    const command = ["/bin/sh", "-c", "ls /proc/self/fd > fds.txt; exec node probe.mjs"];
    const probeCfg = {
      boundSecret: "/x",
      boundDir: "/x",
      hiddenSecret: "/x",
      stateFile: "/x",
      hostPid: 0,
      tmpMarker: "m",
    };
    // The "agent" holds an inheritable fd 100 (as a daemon started by a careless parent would): it must not reach the jail.
    const fixture = spawn(
      "/bin/bash",
      [
        "-c",
        'exec 100</dev/null; exec "$@"',
        "agent",
        process.execPath,
        "--import",
        "tsx",
        join(import.meta.dirname, "jail-restart.fixture.ts"),
        ...[state, dir, logOf(name), String(port), PREFIX],
        JSON.stringify({ name, command, env: { PROBE: JSON.stringify(probeCfg) } }),
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    fixtures.push(fixture);
    const line = await new Promise<string>((resolve, reject) => {
      let out = "";
      fixture.stdout?.on("data", (c: Buffer) => {
        out += c.toString();
        if (out.includes("\n")) resolve(out.slice(0, out.indexOf("\n")));
      });
      fixture.once("exit", (code) => reject(new Error(`fixture exited (${code}) before printing a handle`)));
    });
    const handle = JSON.parse(line) as ChildHandle;
    handles.push({ driver, handle });
    await eventually(
      async () => expect(await (await fetch(`http://127.0.0.1:${port}/`)).text()).toBe(`jail ${name}`),
      {
        timeoutMs: 20_000,
        intervalMs: 50,
      },
    );
    const fds = (await readFile(join(dir, "fds.txt"), "utf8")).split("\n").filter(Boolean).map(Number);
    expect(fds).not.toContain(100);
    expect(fds.filter((fd) => fd > 3)).toEqual([]);

    // The agent dies; the jail keeps serving.
    fixture.kill("SIGKILL");
    await new Promise((r) => fixture.once("exit", r));
    expect(await (await fetch(`http://127.0.0.1:${port}/`)).text()).toBe(`jail ${name}`);

    const fresh = jail({ userPrefix: PREFIX, pollIntervalMs: 50 })({ agentStateDir: state });
    expect(await fresh.recover(handle)).toEqual(handle);
    const recycled = {
      ...handle,
      state: { ...handle.state, shimStartTicks: (handle.state.shimStartTicks as number) + 1 },
    };
    expect(await fresh.recover(recycled)).toBeNull();
    await expect(fresh.recover({ ...handle, driver: "proc" })).rejects.toThrow(HandleStateError);
    await expect(fresh.recover({ ...handle, version: 99 })).rejects.toThrow(HandleStateError);

    const exit = await fresh.stop(handle, 10_000);
    expect(exit.reason).toMatch(/status unknown/);
    expect(await fresh.recover(handle)).toBeNull();
    expect(await jailPids(handle.state.initPid as number)).toEqual([]);
    await fresh.cleanup(handle);
    expect(await userOf(name)).toBeUndefined();
  });
});

describe("jail driver refusals (change nothing)", () => {
  const spec = (over: Partial<ChildSpec> = {}): ChildSpec => ({
    name: "jt-bad",
    command: ["/bin/true"],
    ...over,
  });

  it("names what is wrong: missing bwrap, a program the jail cannot see, bad options, unenforceable limits", async () => {
    const before = await readFile("/etc/passwd", "utf8");
    const noBwrap = jail({ userPrefix: PREFIX, tools: { bwrap: "/nonexistent/bwrap" } })({
      agentStateDir: state,
    });
    await expect(noBwrap.validate(spec())).rejects.toThrow(MissingBinaryError);
    const hiddenTool = join(base, "hidden", "tool.sh");
    await expect(driver.validate(spec({ command: [hiddenTool] }))).rejects.toThrow(MissingBinaryError);
    await expect(
      driver.validate(spec({ command: [hiddenTool], driver: { roBinds: [join(base, "hidden")] } })),
    ).resolves.toBeUndefined();
    await expect(driver.validate(spec({ command: ["no-such-program-enjj"] }))).rejects.toThrow(
      MissingBinaryError,
    );
    await expect(driver.validate(spec({ driver: { writable: ["/srv"] } }))).rejects.toThrow(InvalidSpecError);
    await expect(driver.validate(spec({ driver: { roBinds: [join(base, "nope")] } }))).rejects.toThrow(
      InvalidSpecError,
    );
    await expect(driver.validate(spec({ driver: { roBinds: [state] } }))).rejects.toThrow(InvalidSpecError);
    await expect(driver.validate(spec({ limits: { memoryBytes: 1 << 26 } }))).rejects.toThrow(
      UnenforceableLimitError,
    );
    expect(() => jail({ uid: 0, gid: 0 })).toThrow(SupervisorConfigError);

    const dir = await childDir("jt-bad");
    const request = { port: await freePort(), dir, logPath: logOf("jt-bad") };
    await expect(driver.start({ ...request, spec: spec({ command: [hiddenTool] }) })).rejects.toThrow(
      MissingBinaryError,
    );
    expect(await readFile("/etc/passwd", "utf8")).toBe(before);
    expect((await stat(dir)).uid).toBe(0);
    expect(existsSync(logOf("jt-bad"))).toBe(false);
  });

  it("refuses request paths it cannot use safely, before making a user", async () => {
    const before = await readFile("/etc/passwd", "utf8");
    const closed = join(base, "closed");
    await mkdir(join(closed, "c"), { recursive: true });
    await chmod(closed, 0o700);
    const dir = await childDir("jt-paths");
    const inState = join(state, "c");
    await mkdir(inState, { recursive: true });
    const bad = [
      { dir: join(closed, "c"), logPath: logOf("jt-paths") }, // the jail's user could not reach it
      { dir, logPath: join(dir, "log") }, // the child could swap its log for a link
      { dir: inState, logPath: logOf("jt-paths") }, // inside the agent's state
      { dir: join(base, "children", "absent"), logPath: logOf("jt-paths") },
    ];
    for (const paths of bad)
      await expect(
        driver.start({ ...paths, port: await freePort(), spec: spec() }),
        paths.dir,
      ).rejects.toThrow(InvalidSpecError);
    expect(await readFile("/etc/passwd", "utf8")).toBe(before);
    expect((await stat(dir)).uid).toBe(0);
  });
});
