/**
 * The unix-user driver on a real machine: real system users, real cgroups (v1 or v2), real child
 * processes. Needs root and the memory, pids and cpu controllers; fails loudly without them.
 * Users are named enjt-*, cgroups live under enjt-integ-<pid>; everything is removed after each test.
 */
import { execFileSync } from "node:child_process";
import { chmod, link, mkdir, mkdtemp, readFile, rm, rmdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { eventually } from "../../test/support/eventually.ts";
import { type CgroupPlacement, cgroupEvents, cgroupPids, cgroupUsage } from "./cgroup.ts";
import { detectCgroups, hasController, MOUNTS_PATH } from "./cgroup-layout.ts";
import type { ChildHandle, ChildSpec } from "./driver.ts";
import {
  ChildRunningError,
  InvalidSpecError,
  MissingBinaryError,
  NameTakenError,
  UnenforceableLimitError,
} from "./errors.ts";
import { processesOfUid } from "./linux-process.ts";
import { type UnixUserDriver, type UnixUserOptions, unixUser } from "./unix-user.ts";
import { findAccount } from "./unix-user-account.ts";

const PREFIX = "enjt-";
const CGROUP_PARENT = `enjt-integ-${process.pid}`;
const NODE = "/usr/bin/node";

let root: string;
let stateDir: string;
let keyPath: string;
let driver: UnixUserDriver;
const started: ChildHandle[] = [];
const foreignUsers: string[] = [];

const options = (over: UnixUserOptions = {}): UnixUserOptions => ({
  userPrefix: PREFIX,
  cgroupParent: CGROUP_PARENT,
  pollIntervalMs: 20,
  ...over,
});
const makeDriver = (over: UnixUserOptions = {}) => unixUser(options(over))({ agentStateDir: stateDir });

async function childPlace(name: string): Promise<{ dir: string; logPath: string }> {
  const dir = join(root, "children", name);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  return { dir, logPath: join(root, "logs", `${name}.log`) };
}

async function start(
  spec: ChildSpec,
  d: UnixUserDriver = driver,
): Promise<ChildHandle & { logPath: string }> {
  const place = await childPlace(spec.name);
  const handle = {
    ...(await d.start({ spec, port: 41_000 + started.length, ...place })),
    logPath: place.logPath,
  };
  started.push(handle);
  return handle;
}

const placementOf = (h: ChildHandle) => h.state.cgroup as CgroupPlacement;
const uidOf = (h: ChildHandle) => h.state.uid as number;
const exists = (path: string) =>
  stat(path).then(
    () => true,
    () => false,
  );

/** What the test's own account files and cgroups hold of ours, to assert "nothing changed / nothing left". */
async function leftovers(name: string) {
  const account = await findAccount(`${PREFIX}${name}`);
  const dirs = (await detectCgroups()).hierarchies.map((h) =>
    join(h.mountPath, CGROUP_PARENT, `${PREFIX}${name}`),
  );
  const groups = (await Promise.all(dirs.map(exists))).filter(Boolean).length;
  return { user: account.user !== undefined, group: account.group !== undefined, cgroups: groups };
}

beforeAll(async () => {
  if (process.getuid?.() !== 0)
    throw new Error("unix-user.integ.ts needs root (useradd, cgroups): run it as root");
  const layout = await detectCgroups();
  const missing = (["memory", "pids", "cpu"] as const).filter((c) => !hasController(layout, c));
  if (missing.length > 0)
    throw new Error(`unix-user.integ.ts needs the cgroup controllers: ${missing.join(", ")}`);
  root = await mkdtemp("/tmp/enjt-integ-");
  await chmod(root, 0o711); // children reach their own directories through it
  stateDir = join(root, "state");
  await mkdir(stateDir, { mode: 0o700 });
  keyPath = join(stateDir, "node.key");
  await writeFile(keyPath, "secret key material\n", { mode: 0o600 });
  await mkdir(join(root, "children"), { mode: 0o711 });
  await mkdir(join(root, "logs"), { mode: 0o700 });
  driver = makeDriver();
});

afterEach(async () => {
  for (const h of started.splice(0)) {
    await driver.stop(h, 200).catch(() => {});
    await driver.cleanup(h).catch((err: unknown) => console.error(`cleanup of ${h.name} failed`, err));
  }
  for (const user of foreignUsers.splice(0)) execFileSync("userdel", [user]);
});

afterAll(async () => {
  const layout = await detectCgroups();
  for (const h of layout.hierarchies) await rmdir(join(h.mountPath, CGROUP_PARENT)).catch(() => {});
  if (root) await rm(root, { recursive: true, force: true });
});

describe("unix-user driver", () => {
  it("runs the child as its own user, with only the env it was given, no capabilities, in its cgroups", async () => {
    const script = `const fs = require("fs");
      const status = fs.readFileSync("/proc/self/status", "utf8");
      const field = (k) => status.split("\\n").find((l) => l.startsWith(k + ":")).split(/\\s+/).slice(1).join(" ");
      const limits = fs.readFileSync("/proc/self/limits", "utf8");
      console.log(JSON.stringify({ uid: process.getuid(), gid: process.getgid(), groups: process.getgroups(),
        env: process.env, cwd: process.cwd(), capEff: field("CapEff"), capBnd: field("CapBnd"),
        noNewPrivs: field("NoNewPrivs"), cgroups: fs.readFileSync("/proc/self/cgroup", "utf8"),
        nofile: limits.match(/Max open files\\s+(\\d+)/)[1], core: limits.match(/Max core file size\\s+(\\d+)/)[1],
        umask: process.umask() }));`;
    const h = await start({
      name: "whoami",
      command: [NODE, "-e", script],
      env: { GREETING: "hello" },
      limits: { openFiles: 256, memoryBytes: 256 << 20, pids: 64, cpuMillis: 1000 },
    });
    expect(await driver.wait(h)).toEqual({ code: 0, signal: null });
    const out = JSON.parse(await readFile(h.logPath, "utf8"));
    const passwd = (await findAccount(`${PREFIX}whoami`)).user!;
    expect(out.uid).toBe(passwd.uid);
    expect(out.uid).not.toBe(0);
    expect(out.gid).toBe(passwd.gid);
    expect(out.groups).toEqual([passwd.gid]);
    expect(passwd.shell).toBe("/usr/sbin/nologin");
    expect(passwd.home).toBe(h.state.dir);
    expect(out.env).toEqual({
      GREETING: "hello",
      PORT: String(41_000),
      HOME: h.state.dir,
      USER: `${PREFIX}whoami`,
      PATH: "/usr/local/bin:/usr/bin:/bin",
    });
    expect(out.cwd).toBe(h.state.dir);
    expect(out.capEff).toBe("0000000000000000");
    expect(out.capBnd).toBe("0000000000000000");
    expect(out.noNewPrivs).toBe("1");
    expect(out.nofile).toBe("256");
    expect(out.core).toBe("0");
    expect(out.umask).toBe(0o077);
    for (const c of ["memory", "pids", "cpu"]) {
      expect(out.cgroups).toMatch(
        new RegExp(`^\\d+:[^:]*\\b${c}\\b[^:]*:/${CGROUP_PARENT}/${PREFIX}whoami$`, "m"),
      );
    }
    const home = await stat(h.state.dir as string);
    expect([home.uid, home.mode & 0o777]).toEqual([passwd.uid, 0o700]);
  });

  it("keeps the child out of the agent's state, keys, log file and process", async () => {
    const script = `const fs = require("fs");
      const tryDo = (f) => { try { f(); return "ok"; } catch (e) { return e.code; } };
      console.log(JSON.stringify({
        key: tryDo(() => fs.readFileSync(process.argv[1])),
        list: tryDo(() => fs.readdirSync(process.argv[2])),
        log: tryDo(() => fs.readFileSync(process.argv[3])),
        agentEnv: tryDo(() => fs.readFileSync("/proc/" + process.argv[4] + "/environ")),
        ownHome: tryDo(() => fs.writeFileSync(process.env.HOME + "/mine", "x")),
      }));`;
    const place = join(root, "logs", "nosy.log");
    const h = await start({
      name: "nosy",
      command: [NODE, "-e", script, keyPath, stateDir, place, String(process.pid)],
    });
    expect(h.logPath).toBe(place);
    expect(await driver.wait(h)).toEqual({ code: 0, signal: null });
    expect(JSON.parse(await readFile(h.logPath, "utf8"))).toEqual({
      key: "EACCES",
      list: "EACCES",
      log: "EACCES",
      agentEnv: "EACCES",
      ownHome: "ok",
    });
    const log = await stat(h.logPath);
    expect([log.uid, log.mode & 0o777]).toEqual([0, 0o600]);
  });

  it("the first start gives the child its directory's files, but not a hard link to a file elsewhere", async () => {
    const { dir } = await childPlace("linked");
    const outside = join(root, "outside-file");
    await writeFile(outside, "root's", { mode: 0o600 });
    await writeFile(join(dir, "own"), "old data");
    await link(outside, join(dir, "planted"));
    const h = await start({ name: "linked", command: ["/bin/true"] });
    await driver.wait(h);
    expect((await stat(join(dir, "own"))).uid).toBe(uidOf(h));
    expect((await stat(outside)).uid).toBe(0);
  });

  it("a memory hog is OOM-killed at its memory limit", async () => {
    const limit = 96 << 20;
    const hog = `const held = []; for (let i = 0; i < 1024; i++) { held.push(Buffer.alloc(1 << 20, 1)); }
      console.log("allocated 1 GiB and was not stopped");`;
    const h = await start({ name: "hog", command: [NODE, "-e", hog], limits: { memoryBytes: limit } });
    const exit = await driver.wait(h);
    expect(exit.signal).toBe("SIGKILL");
    expect(exit.reason).toMatch(/memory limit \(OOM\)/);
    const events = await cgroupEvents(placementOf(h));
    expect(events.oomKills).toBeGreaterThanOrEqual(1);
    // It reached its limit (within the kernel's charge batch) and never went past it.
    expect(events.memoryPeakBytes).toBeLessThanOrEqual(limit);
    expect(events.memoryPeakBytes).toBeGreaterThan(limit - (4 << 20));
    expect(await readFile(h.logPath, "utf8")).not.toMatch(/was not stopped/);
  });

  it("a fork bomb is held at its pid limit, and stop() kills all of it", async () => {
    const pids = 16;
    const bomb = "b() { while :; do b & sleep 0.01; done; }; b";
    const h = await start({
      name: "bomb",
      command: ["/bin/sh", "-c", bomb],
      limits: { pids, cpuMillis: 300 },
    });
    const seen: number[] = [];
    await eventually(
      async () => {
        seen.push((await cgroupUsage(placementOf(h))).pids ?? 0);
        expect(Math.max(...seen)).toBe(pids); // it really filled its allowance ...
        expect((await cgroupEvents(placementOf(h))).forksRefused).toBeGreaterThan(10); // ... and forks failed
      },
      { timeoutMs: 30_000, intervalMs: 5 },
    );
    expect(Math.max(...seen)).toBeLessThanOrEqual(pids); // and never went past it
    await driver.stop(h, 200);
    expect(await cgroupPids(placementOf(h))).toEqual([]);
    expect(await processesOfUid(uidOf(h))).toEqual([]);
  });

  it("stop() also kills a grandchild that left the process group; cleanup leaves no user, group, cgroup or process", async () => {
    const h = await start({
      name: "escape",
      command: [
        "/bin/sh",
        "-c",
        "echo x > /tmp/enjt-left-$$; echo y > /dev/shm/enjt-left-$$; setsid sleep 1000 & echo started; exec sleep 1000",
      ],
    });
    const scratch = [`/tmp/enjt-left-${h.pid}`, `/dev/shm/enjt-left-${h.pid}`];
    await eventually(async () => expect(await readFile(h.logPath, "utf8")).toMatch(/started/));
    await eventually(async () => expect((await processesOfUid(uidOf(h))).length).toBe(2));
    for (const file of scratch) expect((await stat(file)).uid).toBe(uidOf(h));
    await expect(driver.cleanup(h)).rejects.toThrow(ChildRunningError);
    expect(await driver.stop(h, 1_000)).toEqual({ code: null, signal: "SIGTERM" });
    expect(await processesOfUid(uidOf(h))).toEqual([]);
    expect(await driver.stop(h, 1_000)).toEqual({ code: null, signal: "SIGTERM" }); // idempotent
    await driver.cleanup(h);
    started.splice(started.indexOf(h), 1);
    expect(await leftovers("escape")).toEqual({ user: false, group: false, cgroups: 0 });
    expect((await stat(h.state.dir as string)).uid).toBe(0);
    for (const file of scratch) expect(await exists(file)).toBe(false); // nothing of the uid is left for its next owner
    await driver.cleanup(h); // idempotent
  });

  it("a restart reuses the child's user; recover after an agent restart gets the same child back", async () => {
    const first = await start({ name: "keeper", command: ["/bin/sleep", "1000"] });
    await driver.stop(first, 1_000);
    const h = await start({ name: "keeper", command: ["/bin/sleep", "1000"] });
    expect(uidOf(h)).toBe(uidOf(first));
    expect(h.pid).not.toBe(first.pid);
    const saved = JSON.parse(JSON.stringify({ ...h, logPath: undefined }));
    const restarted = makeDriver(); // a new agent process: no memory of the child
    const back = await restarted.recover(saved);
    expect(back?.pid).toBe(h.pid);
    const use = await restarted.usage(saved);
    expect(use.pids).toBe(1);
    expect(use.memoryBytes).toBeGreaterThan(0);
    // never adopt a recycled pid: the same pid with another start time, or a live process of another uid
    expect(
      await restarted.recover({
        ...saved,
        state: { ...saved.state, startTicks: saved.state.startTicks + 1 },
      }),
    ).toBe(null);
    const self = await readFile(`/proc/${process.pid}/stat`, "utf8");
    const selfTicks = Number(self.slice(self.lastIndexOf(")") + 2).split(" ")[19]);
    expect(
      await restarted.recover({
        ...saved,
        pid: process.pid,
        state: { ...saved.state, startTicks: selfTicks },
      }),
    ).toBe(null);
    expect(
      await restarted.recover({ ...saved, state: { ...saved.state, bootId: "another-boot" } }),
    ).toBeNull();
    const exit = await restarted.stop(saved, 1_000);
    expect(exit.reason).toMatch(/exited/);
    expect(await driver.wait(h)).toEqual({ code: null, signal: "SIGTERM" });
    expect(await restarted.recover(saved)).toBeNull();
  });

  describe("bad specs get named errors and change nothing", () => {
    const unchanged = async (name: string) =>
      expect(await leftovers(name)).toEqual({ user: false, group: false, cgroups: 0 });

    it("a limit this machine cannot enforce", async () => {
      const mounts = (await readFile(MOUNTS_PATH, "utf8"))
        .split("\n")
        .filter((l) => !/\bcgroup2? \S+ cgroup2? \S*\bmemory\b/.test(l) && !/ cgroup2 /.test(l))
        .join("\n");
      const fakeMounts = join(root, "mounts-without-memory");
      await writeFile(fakeMounts, mounts);
      const noMemory = makeDriver({ mountsPath: fakeMounts });
      const spec = { name: "nomem", command: ["/bin/true"], limits: { memoryBytes: 64 << 20 } };
      await expect(noMemory.validate(spec)).rejects.toThrow(UnenforceableLimitError);
      await expect(start(spec, noMemory)).rejects.toThrow(/limits\.memoryBytes cannot be enforced.*"memory"/);
      await expect(start({ ...spec, limits: { cpuMillis: 5 } })).rejects.toThrow(UnenforceableLimitError);
      await unchanged("nomem");
    });

    it("a user name somebody else has", async () => {
      execFileSync("useradd", ["--system", "--no-create-home", "--comment", "not enjin", `${PREFIX}taken`]);
      foreignUsers.push(`${PREFIX}taken`);
      const spec = { name: "taken", command: ["/bin/true"] };
      await expect(driver.validate(spec)).rejects.toThrow(NameTakenError);
      await expect(start(spec)).rejects.toThrow(/already exists and was not made by enjin/);
      expect((await findAccount(`${PREFIX}taken`)).user?.gecos).toBe("not enjin");
      const layout = await detectCgroups();
      for (const h of layout.hierarchies)
        expect(await exists(join(h.mountPath, CGROUP_PARENT, `${PREFIX}taken`))).toBe(false);
    });

    it("a program that is not there", async () => {
      await expect(start({ name: "ghost", command: ["/nonexistent/enjt-prog"] })).rejects.toThrow(
        MissingBinaryError,
      );
      await expect(start({ name: "ghost", command: ["enjt-no-such-program"] })).rejects.toThrow(
        /child's PATH/,
      );
      await unchanged("ghost");
    });

    it("a child directory inside the agent's state, and a malformed spec", async () => {
      const inside = join(stateDir, "children", "sneaky");
      await mkdir(inside, { recursive: true });
      const spec = { name: "sneaky", command: ["/bin/true"] };
      await expect(
        driver.start({ spec, port: 41_999, dir: inside, logPath: join(root, "logs", "sneaky.log") }),
      ).rejects.toThrow(InvalidSpecError);
      await expect(start({ ...spec, env: { PATH: "/tmp" } })).rejects.toThrow(/env\.PATH/);
      await unchanged("sneaky");
      expect((await stat(inside)).uid).toBe(0);
    });
  });
});
