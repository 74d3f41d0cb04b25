/**
 * cgroup.ts on this machine's real cgroups (v1 hierarchies or the v2 tree): limits land in the
 * kernel's files, a process that joins is listed and killed, a group in use is refused, and removal
 * leaves nothing. Needs root and the memory, pids and cpu controllers; fails loudly without them.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFile, rmdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { eventually } from "../../test/support/eventually.ts";
import {
  type CgroupPlacement,
  cgroupDirs,
  cgroupPids,
  cgroupUsage,
  createCgroup,
  killCgroup,
  procsFiles,
  removeCgroup,
} from "./cgroup.ts";
import { type CgroupLayout, detectCgroups, hasController } from "./cgroup-layout.ts";
import { NameTakenError, UnenforceableLimitError } from "./errors.ts";

const PARENT = `enjt-cgroup-${process.pid}`;
let layout: CgroupLayout;
const made: CgroupPlacement[] = [];
const children: ChildProcess[] = [];

const read = async (p: CgroupPlacement, file: string) => {
  for (const dir of cgroupDirs(p)) {
    const text = await readFile(join(dir, file), "utf8").catch(() => null);
    if (text !== null) return text.trim();
  }
  throw new Error(`no ${file} in ${cgroupDirs(p).join(", ")}`);
};

/** A real process that puts itself into `p` (like the driver's shim) and then sleeps. */
async function joiner(p: CgroupPlacement): Promise<number> {
  const script = 'for f in "$@"; do echo $$ > "$f" || exit 125; done; echo in; exec sleep 1000';
  const child = spawn("/bin/sh", ["-c", script, "joiner", ...procsFiles(p)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  children.push(child);
  await new Promise<void>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`joiner exited ${code}`)));
    child.stdout!.once("data", () => resolve());
  });
  return child.pid!;
}

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error("cgroup.integ.ts needs root to make cgroups: run it as root");
  layout = await detectCgroups();
  const missing = (["memory", "pids", "cpu"] as const).filter((c) => !hasController(layout, c));
  if (missing.length > 0)
    throw new Error(`cgroup.integ.ts needs the cgroup controllers: ${missing.join(", ")}`);
});

afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  for (const p of made.splice(0)) await removeCgroup(p, 5_000);
});

afterAll(async () => {
  for (const h of layout?.hierarchies ?? []) await rmdir(join(h.mountPath, PARENT)).catch(() => {});
});

describe("cgroups on this machine", () => {
  it("writes the limits into the kernel's files", async () => {
    const p = await createCgroup(layout, `${PARENT}/limits`, {
      memoryBytes: 48 << 20,
      pids: 7,
      cpuMillis: 250,
    });
    made.push(p);
    expect(p.nodes.flatMap((n) => n.controllers).sort()).toEqual(["cpu", "memory", "pids"]);
    expect(await read(p, "pids.max")).toBe("7");
    if (p.nodes.some((n) => n.version === 1)) {
      expect(await read(p, "memory.limit_in_bytes")).toBe(String(48 << 20));
      expect(await read(p, "cpu.cfs_quota_us")).toBe("25000");
      expect(await read(p, "cpu.cfs_period_us")).toBe("100000");
    } else {
      expect(await read(p, "memory.max")).toBe(String(48 << 20));
      expect(await read(p, "cpu.max")).toBe("25000 100000");
    }
  });

  it("lists a process that joined, refuses to replace a group in use, and kills and removes it", async () => {
    const p = await createCgroup(layout, `${PARENT}/busy`, {});
    made.push(p);
    const pid = await joiner(p);
    expect(await cgroupPids(p)).toEqual([pid]);
    expect((await cgroupUsage(p)).pids).toBe(1);
    expect((await cgroupUsage(p)).memoryBytes).toBeGreaterThan(0);
    await expect(createCgroup(layout, `${PARENT}/busy`, {})).rejects.toThrow(NameTakenError);
    expect(await cgroupPids(p)).toEqual([pid]); // the refused call changed nothing
    expect(await killCgroup(p, 5_000)).toBe(true);
    await eventually(() => expect(children[0]?.signalCode).toBe("SIGKILL"));
    await removeCgroup(p, 5_000);
    for (const dir of cgroupDirs(p)) await expect(stat(dir)).rejects.toThrow(/ENOENT/);
  });

  it("replaces an empty leftover group with a fresh one", async () => {
    const old = await createCgroup(layout, `${PARENT}/again`, { pids: 3 });
    made.push(old);
    const p = await createCgroup(layout, `${PARENT}/again`, {});
    expect(await read(p, "pids.max")).toBe("max");
  });

  it("refuses a path that would leave its parent, before making anything", async () => {
    await expect(createCgroup(layout, `${PARENT}/../escape`, {})).rejects.toThrow(UnenforceableLimitError);
    for (const h of layout.hierarchies)
      await expect(stat(join(h.mountPath, "escape"))).rejects.toThrow(/ENOENT/);
  });
});
