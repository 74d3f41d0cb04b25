import { describe, expect, it } from "vitest";
import type { ChildSpec } from "./driver.ts";
import { InvalidSpecError, SupervisorConfigError, UnenforceableLimitError } from "./errors.ts";
import {
  bwrapOptions,
  checkJailSpec,
  checkUserPrefix,
  encodeBwrapArgs,
  JAIL_FDS,
  JAIL_LAST_FD,
  jailEnv,
  jailExit,
  jailGroup,
  jailPasswd,
  parseJailSpecOptions,
  SHIM_NAME,
  shimArgv,
} from "./jail-args.ts";
import { ETC_PATHS, jailView } from "./jail-view.ts";

const spec = (over: Partial<ChildSpec> = {}): ChildSpec => ({
  name: "web",
  command: ["node", "server.js"],
  ...over,
});
const TOOLS = {
  bash: "/bin/bash",
  setpriv: "/usr/bin/setpriv",
  bwrap: "/usr/bin/bwrap",
  prlimit: "/usr/bin/prlimit",
};

describe("checkJailSpec", () => {
  it("accepts a plain spec, ./programs in the child's directory, and rlimit-style limits", () => {
    expect(() => checkJailSpec(spec())).not.toThrow();
    expect(() =>
      checkJailSpec(spec({ command: ["./run"], limits: { pids: 10, openFiles: 64 } })),
    ).not.toThrow();
    expect(() =>
      checkJailSpec(spec({ command: ["/usr/bin/node"], env: { NODE_ENV: "production" } })),
    ).not.toThrow();
  });

  it("refuses what the jail cannot run, each with a named error", () => {
    const bad: Array<[Partial<ChildSpec>, new (...a: never[]) => Error]> = [
      [{ name: "Web" }, InvalidSpecError],
      [{ name: "-web" }, InvalidSpecError],
      [{ command: [] }, InvalidSpecError],
      [{ command: [""] }, InvalidSpecError],
      [{ command: ["node", "a\0b"] }, InvalidSpecError],
      [{ command: ["bin/node"] }, InvalidSpecError],
      [{ command: ["/usr/../bin/sh"] }, InvalidSpecError],
      [{ env: { PORT: "1" } }, InvalidSpecError],
      [{ env: { "A-B": "1" } }, InvalidSpecError],
      [{ env: { A: "x\0y" } }, InvalidSpecError],
      [{ limits: { memoryBytes: 1 << 20 } }, UnenforceableLimitError],
      [{ limits: { cpuMillis: 500 } }, UnenforceableLimitError],
      [{ limits: { pids: 0 } }, InvalidSpecError],
      [{ limits: { openFiles: 1.5 } }, InvalidSpecError],
    ];
    for (const [over, cls] of bad) expect(() => checkJailSpec(spec(over)), JSON.stringify(over)).toThrow(cls);
  });
});

describe("parseJailSpecOptions", () => {
  it("defaults the hostname to the child's name and roBinds to none", () => {
    expect(parseJailSpecOptions(spec())).toEqual({ roBinds: [], hostname: "web" });
    expect(parseJailSpecOptions(spec({ driver: { roBinds: ["/opt/x"], hostname: "box-1" } }))).toEqual({
      roBinds: ["/opt/x"],
      hostname: "box-1",
    });
  });
  it("refuses unknown keys and wrong types", () => {
    for (const driver of [
      { writable: ["/srv"] },
      { roBinds: "/opt" },
      { roBinds: [1] },
      { hostname: "A_B" },
      { hostname: "" },
    ])
      expect(() => parseJailSpecOptions(spec({ driver })), JSON.stringify(driver)).toThrow(InvalidSpecError);
  });
});

describe("checkUserPrefix", () => {
  it("accepts a short lowercase prefix and refuses others", () => {
    expect(() => checkUserPrefix("enjj-")).not.toThrow();
    for (const bad of ["", "Root", "9x", "a-prefix-far-too-long", "a:b"])
      expect(() => checkUserPrefix(bad), bad).toThrow(SupervisorConfigError);
  });
});

describe("jailEnv", () => {
  it("replaces the environment: PATH and HOME by default, the spec's env, and PORT from the supervisor", () => {
    expect(jailEnv(spec({ env: { A: "1" } }), 4100, "/srv/c/web")).toEqual({
      PATH: "/usr/local/bin:/usr/bin:/bin",
      HOME: "/srv/c/web",
      A: "1",
      PORT: "4100",
    });
    expect(jailEnv(spec({ env: { PATH: "/opt/bin", HOME: "/tmp" } }), 1, "/d")).toMatchObject({
      PATH: "/opt/bin",
      HOME: "/tmp",
    });
  });
});

describe("bwrapOptions", () => {
  const mounts = jailView({
    root: [{ path: "/usr", kind: "dir" }],
    optionalPaths: ETC_PATHS,
    roBinds: [],
    dir: "/srv/c/web",
    agentStateDir: "/var/lib/enjin",
  });
  const args = bwrapOptions({
    uid: 990,
    gid: 990,
    hostname: "web",
    mounts,
    cwd: "/srv/c/web",
    env: { PATH: "/usr/bin", PORT: "4100", SECRET: "s" },
  });
  const valueAfter = (flag: string) => args[args.indexOf(flag) + 1];

  it("unshares user, pid, ipc and uts, maps the unprivileged uid to itself, and keeps the host network", () => {
    for (const flag of [
      "--unshare-user",
      "--unshare-pid",
      "--unshare-ipc",
      "--unshare-uts",
      "--disable-userns",
    ])
      expect(args).toContain(flag);
    expect(args).not.toContain("--unshare-net");
    expect(args).not.toContain("--unshare-all");
    expect(valueAfter("--uid")).toBe("990");
    expect(valueAfter("--gid")).toBe("990");
    expect(valueAfter("--hostname")).toBe("web");
    expect(args).toContain("--die-with-parent");
    expect(args).toContain("--new-session");
    expect(args).not.toContain("--as-pid-1");
  });

  it("makes the root read-only after every mount, and binds the jail's own passwd and group", () => {
    const lastMount = Math.max(
      args.lastIndexOf("--bind"),
      args.lastIndexOf("--ro-bind-data"),
      args.lastIndexOf("--tmpfs"),
    );
    expect(args.indexOf("--remount-ro")).toBeGreaterThan(lastMount);
    expect(valueAfter("--remount-ro")).toBe("/");
    expect(args.join(" ")).toContain(`--ro-bind-data ${JAIL_FDS.passwd} /etc/passwd`);
    expect(args.join(" ")).toContain(`--ro-bind-data ${JAIL_FDS.group} /etc/group`);
    expect(args.join(" ")).toContain("--bind /srv/c/web /srv/c/web");
    expect(valueAfter("--chdir")).toBe("/srv/c/web");
  });

  it("clears the environment, then sets exactly the given variables, and reports status on fd 4", () => {
    const clear = args.indexOf("--clearenv");
    expect(clear).toBeGreaterThan(-1);
    const sets = args.flatMap((a, i) => (a === "--setenv" ? [[args[i + 1], args[i + 2]]] : []));
    expect(sets).toEqual([
      ["PATH", "/usr/bin"],
      ["PORT", "4100"],
      ["SECRET", "s"],
    ]);
    expect(args.indexOf("--setenv")).toBeGreaterThan(clear);
    expect(valueAfter("--json-status-fd")).toBe(String(JAIL_FDS.status));
  });

  it("encodes for --args as NUL-terminated strings", () => {
    expect(encodeBwrapArgs(["--a", "b c", ""])).toBe("--a\0b c\0\0");
  });
});

describe("shimArgv", () => {
  it("drops to the jail's uid with setpriv before bwrap, which reads its options from fd 3", () => {
    const argv = shimArgv(TOOLS, { uid: 990, gid: 991 }, {}, ["/usr/bin/node", "server.js"]);
    expect(argv.slice(0, 3)).toEqual(["-c", expect.stringContaining(`-gt ${JAIL_LAST_FD}`), SHIM_NAME]);
    expect(argv.slice(3)).toEqual([
      "/usr/bin/setpriv",
      "--reuid",
      "990",
      "--regid",
      "991",
      "--clear-groups",
      "--no-new-privs",
      "--",
      "/usr/bin/bwrap",
      "--args",
      "3",
      "--",
      "/usr/bin/node",
      "server.js",
    ]);
    expect(argv).not.toContain("/usr/bin/prlimit");
  });
  it("sets rlimits with prlimit, counting bwrap's two processes in RLIMIT_NPROC", () => {
    const argv = shimArgv(TOOLS, { uid: 990, gid: 991 }, { pids: 10, openFiles: 64 }, ["x"]);
    const at = argv.indexOf("/usr/bin/prlimit");
    expect(argv.slice(at, at + 4)).toEqual(["/usr/bin/prlimit", "--nofile=64:64", "--nproc=12:12", "--"]);
    expect(argv.indexOf("/usr/bin/setpriv")).toBeGreaterThan(at);
  });
});

describe("jailPasswd / jailGroup", () => {
  it("hold only the jail's user and nobody", () => {
    expect(jailPasswd("enjail-web", 990, 991, "/srv/c/web").split("\n")).toEqual([
      "enjail-web:x:990:991:enjail-web:/srv/c/web:/usr/sbin/nologin",
      "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin",
      "",
    ]);
    expect(jailGroup("enjail-web", 991)).toBe("enjail-web:x:991:\nnogroup:x:65534:\n");
  });
});

describe("jailExit", () => {
  it("maps 128 + N back to the signal, and keeps other codes", () => {
    expect(jailExit(0, null)).toEqual({ code: 0, signal: null });
    expect(jailExit(1, null)).toEqual({ code: 1, signal: null });
    expect(jailExit(143, null)).toMatchObject({ code: null, signal: "SIGTERM" });
    expect(jailExit(137, null)).toMatchObject({ code: null, signal: "SIGKILL" });
    expect(jailExit(255, null)).toEqual({ code: 255, signal: null });
    expect(jailExit(null, "SIGKILL")).toMatchObject({ code: null, signal: "SIGKILL" });
  });
});
