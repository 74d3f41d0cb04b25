import { describe, expect, it } from "vitest";
import { placementFromState } from "./cgroup.ts";
import {
  type CgroupLayout,
  checkEnforceable,
  checkRelPath,
  cpuQuotaUs,
  hasController,
  layoutFromMounts,
  limitWrites,
  parseMounts,
} from "./cgroup-layout.ts";
import { HandleStateError, UnenforceableLimitError } from "./errors.ts";

// The mount table of a Debian 12 machine with cgroup v1 controllers and an empty v2 tree beside them.
const HYBRID = `tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup /sys/fs/cgroup/cpuacct cgroup rw,relatime,cpuacct 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup /sys/fs/cgroup/pids cgroup rw,relatime,pids 0 0
cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
`;

const UNIFIED = `proc /proc proc rw 0 0
cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate 0 0
`;

const v1: CgroupLayout = layoutFromMounts(parseMounts(HYBRID), () => []);

describe("parseMounts", () => {
  it("splits fields and options and decodes octal escapes", () => {
    const [m] = parseMounts("cgroup /sys/fs/my\\040cg cgroup rw,memory 0 0\n");
    expect(m).toEqual({
      source: "cgroup",
      mountPath: "/sys/fs/my cg",
      type: "cgroup",
      options: ["rw", "memory"],
    });
  });
  it("skips short lines", () => {
    expect(parseMounts("\nbad line\n")).toEqual([]);
  });
});

describe("layoutFromMounts", () => {
  it("finds v1 controllers by their mount options and ignores a v2 tree without controllers", () => {
    expect(v1.hierarchies).toEqual([
      { version: 1, mountPath: "/sys/fs/cgroup/cpu", controllers: ["cpu"] },
      { version: 1, mountPath: "/sys/fs/cgroup/memory", controllers: ["memory"] },
      { version: 1, mountPath: "/sys/fs/cgroup/pids", controllers: ["pids"] },
    ]);
  });
  it("keeps co-mounted controllers in one hierarchy", () => {
    const layout = layoutFromMounts(parseMounts("cgroup /c cgroup rw,cpu,cpuacct,pids 0 0\n"), () => []);
    expect(layout.hierarchies).toEqual([{ version: 1, mountPath: "/c", controllers: ["pids", "cpu"] }]);
  });
  it("on a unified machine uses what the v2 root offers", () => {
    const seen: string[] = [];
    const layout = layoutFromMounts(parseMounts(UNIFIED), (path) => {
      seen.push(path);
      return ["cpuset", "cpu", "io", "memory", "pids"];
    });
    expect(seen).toEqual(["/sys/fs/cgroup"]);
    expect(layout.hierarchies).toEqual([
      { version: 2, mountPath: "/sys/fs/cgroup", controllers: ["memory", "pids", "cpu"] },
    ]);
  });
  it("does not give v2 a controller a v1 hierarchy holds", () => {
    const layout = layoutFromMounts(parseMounts(HYBRID), () => ["memory", "pids"]);
    expect(layout.hierarchies.filter((h) => h.version === 2)).toEqual([]);
  });
  it("is empty without cgroups", () => {
    expect(layoutFromMounts(parseMounts("proc /proc proc rw 0 0\n"), () => []).hierarchies).toEqual([]);
  });
});

describe("checkEnforceable", () => {
  const noMemory: CgroupLayout = {
    hierarchies: v1.hierarchies.filter((h) => !h.controllers.includes("memory")),
  };
  it("accepts limits the layout has controllers for", () => {
    expect(() => checkEnforceable(v1, { memoryBytes: 1 << 26, pids: 10, cpuMillis: 500 })).not.toThrow();
    expect(() => checkEnforceable({ hierarchies: [] }, {})).not.toThrow();
  });
  it("names the limit and the missing controller", () => {
    expect(hasController(noMemory, "memory")).toBe(false);
    expect(() => checkEnforceable(noMemory, { memoryBytes: 1 << 26 })).toThrow(UnenforceableLimitError);
    expect(() => checkEnforceable(noMemory, { memoryBytes: 1 << 26 })).toThrow(
      /limits\.memoryBytes.*"memory"/,
    );
    expect(() => checkEnforceable({ hierarchies: [] }, { pids: 5 })).toThrow(/limits\.pids.*"pids"/);
  });
  it("refuses a cpu share below the kernel's smallest quota", () => {
    expect(cpuQuotaUs(10)).toBe(1_000);
    expect(() => checkEnforceable(v1, { cpuMillis: 10 })).not.toThrow();
    expect(() => checkEnforceable(v1, { cpuMillis: 9 })).toThrow(/at least that/);
  });
});

describe("limitWrites", () => {
  const limits = { memoryBytes: 64 << 20, pids: 32, cpuMillis: 250 };
  it("v1: memory then memsw (optional), pids.max, period then quota", () => {
    const writes = v1.hierarchies.flatMap((h) => limitWrites(h, limits));
    expect(writes).toEqual([
      { file: "cpu.cfs_period_us", value: "100000", optional: false },
      { file: "cpu.cfs_quota_us", value: "25000", optional: false },
      { file: "memory.limit_in_bytes", value: String(64 << 20), optional: false },
      { file: "memory.memsw.limit_in_bytes", value: String(64 << 20), optional: true },
      { file: "pids.max", value: "32", optional: false },
    ]);
  });
  it("v2: memory.max, no swap, pids.max, cpu.max", () => {
    const h = {
      version: 2 as const,
      mountPath: "/sys/fs/cgroup",
      controllers: ["memory", "pids", "cpu"] as const,
    };
    expect(limitWrites({ ...h, controllers: [...h.controllers] }, limits)).toEqual([
      { file: "memory.max", value: String(64 << 20), optional: false },
      { file: "memory.swap.max", value: "0", optional: true },
      { file: "pids.max", value: "32", optional: false },
      { file: "cpu.max", value: "25000 100000", optional: false },
    ]);
  });
  it("writes nothing for limits not asked for", () => {
    expect(v1.hierarchies.flatMap((h) => limitWrites(h, {}))).toEqual([]);
  });
});

describe("group paths", () => {
  it("accepts relative paths of safe segments", () => {
    expect(() => checkRelPath("enjin/enjin-web")).not.toThrow();
  });
  it.each(["../etc", "/abs", "a//b", "a/./b", "a/../b", "", "a b"])("refuses %j", (path) => {
    expect(() => checkRelPath(path)).toThrow(UnenforceableLimitError);
  });
});

describe("placementFromState", () => {
  const saved = JSON.parse(
    JSON.stringify({ nodes: v1.hierarchies.map((h) => ({ ...h, relPath: "enjin/enjin-a" })) }),
  );
  it("reads back a saved placement", () => {
    expect(placementFromState(saved, v1).nodes.map((n) => n.relPath)).toEqual([
      "enjin/enjin-a",
      "enjin/enjin-a",
      "enjin/enjin-a",
    ]);
  });
  it("refuses hierarchies this machine does not have, bad paths and bad shapes", () => {
    const foreign = {
      nodes: [{ version: 1, mountPath: "/elsewhere", controllers: ["memory"], relPath: "x" }],
    };
    expect(() => placementFromState(foreign, v1)).toThrow(HandleStateError);
    const escaping = { nodes: [{ ...saved.nodes[0], relPath: "../../etc" }] };
    expect(() => placementFromState(escaping, v1)).toThrow(HandleStateError);
    expect(() => placementFromState(null, v1)).toThrow(HandleStateError);
    expect(() => placementFromState({ nodes: [null] }, v1)).toThrow(HandleStateError);
  });
});
