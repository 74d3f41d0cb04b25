import { describe, expect, it } from "vitest";
import { InvalidSpecError, SupervisorConfigError } from "./errors.ts";
import {
  ETC_PATHS,
  type HostFileProbe,
  hostPathOf,
  isCleanAbsolutePath,
  isWithin,
  type JailMount,
  jailView,
  type RootEntry,
  resolveProgram,
} from "./jail-view.ts";

/** A merged-/usr Debian root. */
const ROOT: RootEntry[] = [
  { path: "/usr", kind: "dir" },
  { path: "/bin", kind: "symlink", target: "usr/bin" },
  { path: "/lib", kind: "symlink", target: "usr/lib" },
  { path: "/lib64", kind: "symlink", target: "usr/lib64" },
];
const STATE = "/var/lib/enjin";
const DIR = "/srv/children/web";

const view = (over: Partial<Parameters<typeof jailView>[0]> = {}): JailMount[] =>
  jailView({ root: ROOT, optionalPaths: ETC_PATHS, roBinds: [], dir: DIR, agentStateDir: STATE, ...over });

describe("isWithin / isCleanAbsolutePath", () => {
  it("compares whole path components", () => {
    expect(isWithin("/a/b", "/a")).toBe(true);
    expect(isWithin("/a", "/a")).toBe(true);
    expect(isWithin("/ab", "/a")).toBe(false);
    expect(isWithin("/anything", "/")).toBe(true);
  });
  it("accepts only normal absolute paths", () => {
    expect(isCleanAbsolutePath("/srv/x")).toBe(true);
    for (const bad of ["srv/x", "/srv/../etc", "/srv//x", "/srv/x/", "/srv/./x", "/a\0b"])
      expect(isCleanAbsolutePath(bad)).toBe(false);
  });
});

describe("jailView", () => {
  it("mirrors the system read-only, makes /proc, /dev and /tmp, and binds the child's directory last", () => {
    const mounts = view();
    expect(mounts.slice(0, 4)).toEqual([
      { kind: "ro-bind", src: "/usr", dest: "/usr" },
      { kind: "symlink", target: "usr/bin", dest: "/bin" },
      { kind: "symlink", target: "usr/lib", dest: "/lib" },
      { kind: "symlink", target: "usr/lib64", dest: "/lib64" },
    ]);
    expect(mounts).toContainEqual({ kind: "ro-bind-try", src: "/etc/ld.so.cache", dest: "/etc/ld.so.cache" });
    expect(mounts).toContainEqual({ kind: "tmpfs", dest: "/tmp" });
    expect(mounts).toContainEqual({ kind: "proc", dest: "/proc" });
    expect(mounts.at(-1)).toEqual({ kind: "bind", src: DIR, dest: DIR });
    // The only read-write bind is the child's own directory; nothing shows the state directory.
    expect(mounts.filter((m) => m.kind === "bind")).toHaveLength(1);
    expect(mounts.some((m) => "src" in m && (isWithin(STATE, m.src) || isWithin(m.src, STATE)))).toBe(false);
    // Neither the host's passwd/shadow nor the whole of /etc is bound.
    expect(
      mounts.some((m) => "src" in m && ["/etc", "/etc/passwd", "/etc/shadow", "/"].includes(m.src)),
    ).toBe(false);
  });

  it("covers the agent's state directory with an empty tmpfs when a bind would show it, before the child's directory", () => {
    const mounts = view({ roBinds: ["/var/lib"], dir: `${STATE}/children/web` });
    const hide = mounts.findIndex((m) => m.kind === "tmpfs" && m.dest === STATE);
    const bindLib = mounts.findIndex((m) => m.kind === "ro-bind" && m.dest === "/var/lib");
    const own = mounts.findIndex((m) => m.kind === "bind");
    expect(bindLib).toBeGreaterThan(-1);
    expect(hide).toBeGreaterThan(bindLib);
    expect(own).toBeGreaterThan(hide);
    expect(hostPathOf(mounts, `${STATE}/db/CURRENT`)).toBeNull();
    expect(hostPathOf(mounts, `${STATE}/children/web/app.js`)).toBe(`${STATE}/children/web/app.js`);
    expect(hostPathOf(mounts, "/var/lib/dpkg/status")).toBe("/var/lib/dpkg/status");
  });

  it("adds no tmpfs over the state directory when nothing shows it", () => {
    expect(view().some((m) => m.kind === "tmpfs" && m.dest === STATE)).toBe(false);
  });

  it("refuses extra binds that are not clean, the whole root, under /proc or /dev, or inside the state directory", () => {
    for (const bad of ["opt", "/opt/../etc", "/", "/proc/1", "/dev/sda", `${STATE}/keys`, STATE])
      expect(() => view({ roBinds: [bad] }), bad).toThrow(InvalidSpecError);
  });

  it("refuses a child directory that contains the state directory, or is not clean", () => {
    expect(() => view({ dir: "/var/lib" })).toThrow(SupervisorConfigError);
    expect(() => view({ dir: STATE })).toThrow(SupervisorConfigError);
    expect(() => view({ dir: "/" })).toThrow(SupervisorConfigError);
    expect(() => view({ dir: "srv/x" })).toThrow(SupervisorConfigError);
  });

  it("leaves the directory bind out when the directory is not known yet (validate)", () => {
    expect(view({ dir: null }).some((m) => m.kind === "bind")).toBe(false);
  });
});

describe("hostPathOf", () => {
  const mounts = view({ roBinds: ["/opt/tools"] });
  it("follows the view's own symlinks and maps binds", () => {
    expect(hostPathOf(mounts, "/bin/sh")).toBe("/usr/bin/sh");
    expect(hostPathOf(mounts, "/lib64/ld-linux-x86-64.so.2")).toBe("/usr/lib64/ld-linux-x86-64.so.2");
    expect(hostPathOf(mounts, "/opt/tools/bin/x")).toBe("/opt/tools/bin/x");
    expect(hostPathOf(mounts, `${DIR}/run.sh`)).toBe(`${DIR}/run.sh`);
  });
  it("finds nothing where the jail has nothing of the host", () => {
    for (const p of [
      "/root/.bashrc",
      "/home/x",
      "/tmp/x",
      "/proc/1/environ",
      "/opt/other",
      "/etc/shadow",
      "/bin",
    ])
      expect(hostPathOf(mounts, p), p).toBeNull();
  });
});

describe("resolveProgram", () => {
  /** Fake host: files that are executable, and symlinks. */
  function probe(exec: string[], links: Record<string, string> = {}): HostFileProbe {
    return {
      readlink: async (p) => links[p] ?? null,
      isExecutable: async (p) => exec.includes(p),
    };
  }
  const mounts = view({ roBinds: ["/opt/tools"] });

  it("looks bare names up in PATH through the view and returns the jail path", async () => {
    expect(
      await resolveProgram(mounts, "node", "/usr/local/bin:/usr/bin:/bin", probe(["/usr/bin/node"])),
    ).toBe("/usr/bin/node");
    expect(await resolveProgram(mounts, "sh", "/bin", probe(["/usr/bin/sh"]))).toBe("/bin/sh");
  });

  it("follows symlinks through the view (Debian alternatives)", async () => {
    const links = { "/usr/bin/awk": "/etc/alternatives/awk", "/etc/alternatives/awk": "/usr/bin/mawk" };
    expect(await resolveProgram(mounts, "/usr/bin/awk", "", probe(["/usr/bin/mawk"], links))).toBe(
      "/usr/bin/awk",
    );
  });

  it("does not find programs the jail cannot see, even if the host has them", async () => {
    const everything = probe(["/root/.pyenv/shims/python3", "/home/u/bin/x", "/opt/other/x", "/usr/bin/ok"]);
    expect(await resolveProgram(mounts, "/root/.pyenv/shims/python3", "", everything)).toBeNull();
    expect(await resolveProgram(mounts, "x", "/home/u/bin:/opt/other", everything)).toBeNull();
    // A symlink that leads out of the view is not followed to the host's file.
    const out = probe(["/home/u/bin/x"], { "/usr/bin/x": "/home/u/bin/x" });
    expect(await resolveProgram(mounts, "/usr/bin/x", "", out)).toBeNull();
    expect(await resolveProgram(mounts, "bin/ok", "/usr", everything)).toBeNull();
  });

  it("gives up on symlink loops", async () => {
    const loop = probe([], { "/usr/bin/a": "/usr/bin/b", "/usr/bin/b": "/usr/bin/a" });
    expect(await resolveProgram(mounts, "/usr/bin/a", "", loop)).toBeNull();
  });
});
