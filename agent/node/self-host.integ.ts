/**
 * The self-hosting launch command against real files and a real shell: the words ringd children
 * run with, from the sources and from a dist/ layout, and the shell wrapper putting PORT into
 * --listen without touching any other word. The whole story (a seed hosting a ring-1 ringd that
 * hosts an app) is test/integ/self-host.integ.ts.
 */
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { ringdChildSpec } from "./self-host.ts";
import { RingdEntryMissingError, ringdLauncher, shebangOptions } from "./self-host-launcher.ts";

const made: string[] = [];
afterAll(async () => {
  for (const dir of made) await rm(dir, { recursive: true, force: true });
});

describe("ringd child command", () => {
  it("the shell puts PORT into --listen and passes every other word unchanged", () => {
    const spec = ringdChildSpec({
      name: "ring1-a",
      launcher: { command: ["/bin/echo", "a  b", "$HOME", "'q'"], readOnlyPaths: [] },
      listenHost: "[::1]",
      transport: "zeromq",
      childPorts: { firstPort: 21_000, lastPort: 21_099 },
      logLevel: "info",
      strategy: "unix-user",
    });
    const out = execFileSync(spec.command[0]!, spec.command.slice(1), {
      env: { PORT: "20005", HOME: "/nowhere" },
    }).toString();
    expect(out.trim()).toBe(
      "a  b $HOME 'q' start --data-dir state --join-token-file join-token --children-dir children " +
        "--child-ports 21000-21099 --name ring1-a --transport zeromq --log-level info --listen [::1]:20005",
    );
  });

  it("runs this checkout's sources under tsx, with ringd's shebang options, all by absolute path", () => {
    const l = ringdLauncher();
    const entry = l.command.at(-1)!;
    expect(l.command[0]).toBe(process.execPath);
    expect(entry).toMatch(/^\/.*\/ctl\/bin\/ringd\.ts$/);
    expect(shebangOptions(entry)).toEqual(["--max-semi-space-size=1", "--no-concurrent-recompilation"]);
    expect(l.command.slice(1, -1)).toEqual([
      "--max-semi-space-size=1",
      "--no-concurrent-recompilation",
      "--import",
      expect.stringMatching(/^file:\/\/\/.*\/node_modules\/tsx\/dist\/loader\.mjs$/),
    ]);
    expect(entry.startsWith(`${l.readOnlyPaths[0]}/`)).toBe(true);
    // It really runs ringd, from another directory.
    const out = execFileSync(l.command[0]!, [...l.command.slice(1), "version"], { cwd: "/" }).toString();
    expect(out).toMatch(/^ringd /);
  });

  it("runs the built JavaScript without a loader from a dist/ layout, and says when it is missing", async () => {
    const root = await mkdtemp(join(tmpdir(), "enjin-launcher-"));
    made.push(root);
    await mkdir(join(root, "node_modules"));
    await mkdir(join(root, "dist", "ctl", "bin"), { recursive: true });
    await writeFile(join(root, "dist", "ctl", "bin", "ringd.js"), "#!/usr/bin/env -S node --a=1 --b\n");
    const moduleUrl = pathToFileURL(join(root, "dist", "agent", "node", "self-host-launcher.js")).href;
    const l = ringdLauncher(moduleUrl);
    expect(l.command).toEqual([
      process.execPath,
      "--a=1",
      "--b",
      join(root, "dist", "ctl", "bin", "ringd.js"),
    ]);
    expect(l.readOnlyPaths[0]).toBe(root);
    const elsewhere = pathToFileURL(join(root, "other", "agent", "node", "self-host-launcher.js")).href;
    expect(() => ringdLauncher(elsewhere)).toThrow(RingdEntryMissingError);
  });
});
