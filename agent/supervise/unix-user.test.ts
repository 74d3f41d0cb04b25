import { describe, expect, it } from "vitest";
import type { ChildHandle, ChildSpec } from "./driver.ts";
import { HandleStateError, InvalidSpecError, NameTakenError } from "./errors.ts";
import { parseProcStat, parseStatusRssBytes, parseStatusUid } from "./linux-process.ts";
import {
  checkAccountOurs,
  deriveUserName,
  ownMark,
  parseGroup,
  parsePasswd,
  USER_NAME_MAX,
} from "./unix-user-account.ts";
import { isInside } from "./unix-user-host.ts";
import { checkSpecShape, childEnv, childRlimits, SAFE_PATH, shimArgs, stateOf } from "./unix-user-spec.ts";

const spec = (over: Partial<ChildSpec> = {}): ChildSpec => ({
  name: "web",
  command: ["/usr/bin/node", "x.js"],
  ...over,
});

describe("deriveUserName", () => {
  it("is prefix + name when that fits", () => {
    expect(deriveUserName("enjin-", "web")).toBe("enjin-web");
  });
  it("fits a long name into 32 characters with a hash that tells long names apart", () => {
    const a = deriveUserName("enjin-", `${"a".repeat(30)}-one`);
    const b = deriveUserName("enjin-", `${"a".repeat(30)}-two`);
    expect(a.length).toBeLessThanOrEqual(USER_NAME_MAX);
    expect(b.length).toBeLessThanOrEqual(USER_NAME_MAX);
    expect(a).not.toBe(b);
    expect(a).toMatch(/^enjin-a+-[0-9a-f]{6}$/);
    expect(deriveUserName("enjin-", `${"a".repeat(30)}-one`)).toBe(a);
  });
});

describe("account files", () => {
  const passwd =
    "root:x:0:0:root:/root:/bin/bash\nenjin-web:x:998:997:enjin child web:/srv/web:/usr/sbin/nologin\n";
  const group = "root:x:0:\nenjin-web:x:997:\nstaff:x:50:alice,bob\n";
  const users = parsePasswd(passwd);
  const groups = parseGroup(group);
  it("parse", () => {
    expect(users[1]).toEqual({
      name: "enjin-web",
      uid: 998,
      gid: 997,
      gecos: "enjin child web",
      home: "/srv/web",
      shell: "/usr/sbin/nologin",
    });
    expect(groups[2]).toEqual({ name: "staff", gid: 50, members: ["alice", "bob"] });
  });
  it("an account is ours only with our mark for this child", () => {
    const user = users[1];
    const grp = groups[1];
    expect(ownMark("web")).toBe(user?.gecos);
    expect(() => checkAccountOurs("enjin-web", "web", { user: undefined, group: undefined })).not.toThrow();
    expect(() => checkAccountOurs("enjin-web", "web", { user, group: grp })).not.toThrow();
    expect(() => checkAccountOurs("enjin-web", "other", { user, group: grp })).toThrow(NameTakenError);
    expect(() => checkAccountOurs("root", "web", { user: users[0], group: undefined })).toThrow(
      /was not made by enjin/,
    );
    expect(() => checkAccountOurs("staff", "web", { user: undefined, group: groups[2] })).toThrow(
      /system group/,
    );
  });
});

describe("checkSpecShape", () => {
  it("accepts a good spec", () => {
    expect(() =>
      checkSpecShape(spec({ env: { A_1: "x" }, limits: { memoryBytes: 1 << 26, pids: 5, cpuMillis: 10 } })),
    ).not.toThrow();
  });
  it.each([
    ["a bad name", spec({ name: "Web" }), /name must match/],
    ["an empty command", spec({ command: [] }), /command must be/],
    ["a NUL in an argument", spec({ command: ["/bin/true", "a\0b"] }), /command\[1\]/],
    ["a bad env name", spec({ env: { "A-B": "x" } }), /env name/],
    ["a reserved env name", spec({ env: { PATH: "/tmp" } }), /env\.PATH is set by the unix-user driver/],
    ["a fractional limit", spec({ limits: { memoryBytes: 1.5 } }), /limits\.memoryBytes/],
    ["a zero limit", spec({ limits: { pids: 0 } }), /limits\.pids/],
    ["too many open files", spec({ limits: { openFiles: 2 ** 21 } }), /limits\.openFiles/],
    ["driver settings", spec({ driver: { image: "x" } }), /driver\.image/],
  ])("refuses %s", (_what, bad, message) => {
    expect(() => checkSpecShape(bad)).toThrow(InvalidSpecError);
    expect(() => checkSpecShape(bad)).toThrow(message);
  });
});

describe("childEnv", () => {
  it("is the spec's env plus PORT, HOME, USER, PATH and nothing of the agent's", () => {
    const env = childEnv(spec({ env: { GREETING: "hi" } }), {
      port: 4100,
      home: "/srv/web",
      user: "enjin-web",
      path: SAFE_PATH,
    });
    expect(env).toEqual({
      GREETING: "hi",
      PORT: "4100",
      HOME: "/srv/web",
      USER: "enjin-web",
      PATH: SAFE_PATH,
    });
  });
});

describe("childRlimits", () => {
  it("uses RLIMIT_NPROC as the pid limit without a pids controller and as a backstop above it with one", () => {
    expect(childRlimits({ pids: 20 }, { pidsController: false, defaultOpenFiles: 4096 })).toEqual({
      openFiles: 4096,
      processes: 20,
    });
    expect(
      childRlimits({ pids: 20, openFiles: 64 }, { pidsController: true, defaultOpenFiles: 4096 }),
    ).toEqual({
      openFiles: 64,
      processes: 21,
    });
    expect(childRlimits({}, { pidsController: true, defaultOpenFiles: 100 }).processes).toBeNull();
  });
});

describe("shimArgs", () => {
  const base = {
    procsFiles: ["/cg/memory/enjin/enjin-web/cgroup.procs", "/cg/pids/enjin/enjin-web/cgroup.procs"],
    uid: 998,
    gid: 997,
    prlimit: "/usr/bin/prlimit",
    setpriv: "/usr/bin/setpriv",
    command: ["/usr/bin/node", "--", "x.js"],
  };
  it("passes cgroup files as arguments, then prlimit, then setpriv dropping everything, then the command", () => {
    const args = shimArgs({ ...base, rlimits: { openFiles: 64, processes: 21 } });
    expect(args.slice(0, 1)).toEqual(["-c"]);
    expect(args.slice(2)).toEqual([
      "enjin-shim",
      "2",
      ...base.procsFiles,
      "/usr/bin/prlimit",
      "--nofile=64:64",
      "--nproc=21:21",
      "--core=0:0",
      "--",
      "/usr/bin/setpriv",
      "--reuid=998",
      "--regid=997",
      "--init-groups",
      "--inh-caps=-all",
      "--bounding-set=-all",
      "--no-new-privs",
      "--",
      "/usr/bin/node",
      "--",
      "x.js",
    ]);
  });
  it("sets no RLIMIT_NPROC without a pid limit", () => {
    const args = shimArgs({ ...base, rlimits: { openFiles: 64, processes: null } });
    expect(args.some((a) => a.startsWith("--nproc"))).toBe(false);
  });
});

describe("stateOf", () => {
  const good: ChildHandle = {
    driver: "unix-user",
    name: "web",
    version: 1,
    pid: 1234,
    startedMs: 0,
    state: {
      user: "enjin-web",
      uid: 998,
      gid: 997,
      startTicks: 5,
      bootId: "b0",
      dir: "/srv/web",
      cgroup: { nodes: [] },
    },
  };
  it("reads a version-1 unix-user handle", () => {
    expect(stateOf(good).uid).toBe(998);
  });
  it.each([
    ["another driver's", { ...good, driver: "proc" }],
    ["a newer version", { ...good, version: 2 }],
    ["uid 0", { ...good, state: { ...good.state, uid: 0 } }],
    ["no start time", { ...good, state: { ...good.state, startTicks: undefined } }],
    ["no boot id", { ...good, state: { ...good.state, bootId: undefined } }],
  ])("refuses %s", (_what, bad) => {
    expect(() => stateOf(bad as ChildHandle)).toThrow(HandleStateError);
  });
});

describe("/proc parsing", () => {
  it("counts stat fields from the last parenthesis of the command name", () => {
    const fields = Array.from({ length: 50 }, (_v, i) => String(i + 3));
    fields[0] = "S";
    fields[19] = "987654"; // field 22, starttime
    const parsed = parseProcStat(`42 (a) b (c) ${fields.join(" ")}`);
    expect(parsed).toEqual({ state: "S", ppid: 4, pgrp: 5, startTicks: 987654 });
    expect(parseProcStat("garbage")).toBeNull();
  });
  it("reads the real uid and resident memory from status", () => {
    const status = "Name:\tnode\nState:\tS (sleeping)\nUid:\t998\t998\t998\t998\nVmRSS:\t   2048 kB\n";
    expect(parseStatusUid(status)).toBe(998);
    expect(parseStatusRssBytes(status)).toBe(2048 * 1024);
    expect(parseStatusUid("Name:\tx\n")).toBeNull();
  });
});

describe("isInside", () => {
  it("is true for the directory itself and below, false beside it", () => {
    expect(isInside("/var/lib/enjin", "/var/lib/enjin/keys")).toBe(true);
    expect(isInside("/var/lib/enjin", "/var/lib/enjin")).toBe(true);
    expect(isInside("/var/lib/enjin", "/var/lib/enjin-children/web")).toBe(false);
  });
});
