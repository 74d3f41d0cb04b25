/**
 * The real executables, run as child processes: what they print on stdout and stderr, and their
 * exit codes.
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "..");

interface Ran {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Run `ctl/bin/<bin>.ts` with `args` under node + tsx, with only `env` from ENJIN_*. */
function runBin(bin: "ringctl" | "ringd", args: string[], env: Record<string, string> = {}): Promise<Ran> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("ENJIN_")));
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["--import", "tsx", join(ROOT, "ctl", "bin", `${bin}.ts`), ...args],
      { cwd: ROOT, env: { ...clean, ...env } },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === "number" ? err.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

describe("ringctl", () => {
  it("version prints one line on stdout, exit 0", async () => {
    const { code, stdout, stderr } = await runBin("ringctl", ["version"]);
    expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
    expect(stdout).toMatch(/^ringctl \d+\.\d+\.\d+ \(protocol \d+\.\.\d+, node v\d+/);
  });

  it("version --json prints stable fields", async () => {
    const { code, stdout } = await runBin("ringctl", ["version", "--json"]);
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toEqual({
      name: "ringctl",
      version: expect.stringMatching(/^\d+\.\d+\.\d+/),
      protocol: { min: expect.any(Number), max: expect.any(Number) },
      node: process.version,
    });
  });

  it("help and --help print on stdout, exit 0; a command's help is a man page", async () => {
    const list = await runBin("ringctl", ["help"]);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/COMMANDS\n(?: {4}\S.*\n)* {4}version +print the version/);
    const page = await runBin("ringctl", ["version", "--help"]);
    expect(page.code).toBe(0);
    for (const section of [
      "NAME",
      "SYNOPSIS",
      "DESCRIPTION",
      "OPTIONS",
      "JSON OUTPUT",
      "EXIT STATUS",
      "EXAMPLES",
    ]) {
      expect(page.stdout).toMatch(new RegExp(`^${section}$`, "m"));
    }
    expect(page.stderr).toBe("");
  });

  it("an unknown command or option says what to do on stderr, exit 2, nothing on stdout", async () => {
    const command = await runBin("ringctl", ["verison"]);
    expect(command).toEqual({
      code: 2,
      stdout: "",
      stderr:
        "ringctl: unknown command 'verison'; did you mean 'version'? Run 'ringctl help' for the list of commands.\n",
    });
    const option = await runBin("ringctl", ["version", "--verbose"]);
    expect(option.code).toBe(2);
    expect(option.stdout).toBe("");
    expect(option.stderr).toMatch(
      /unknown option '--verbose' for 'ringctl version'.*Run 'ringctl version --help'/,
    );
    const bare = await runBin("ringctl", []);
    expect(bare.code).toBe(2);
    expect(bare.stdout).toBe("");
  });
});

describe("ringd config show", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "enjin-bin-"));
    await writeFile(join(dir, "ringd.json"), JSON.stringify({ ring: 0, logLevel: "debug", tiers: ["db"] }));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("merges flags > env > file > defaults and says where each value came from", async () => {
    const { code, stdout, stderr } = await runBin(
      "ringd",
      ["config", "show", "--json", "--data-dir", dir, "--tier", "web"],
      { ENJIN_RING: "1", ENJIN_TIERS: "cache" },
    );
    expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
    const shown = JSON.parse(stdout);
    expect(shown.file).toBe(join(dir, "ringd.json"));
    expect(shown.config).toMatchObject({
      dataDir: dir,
      ring: 1,
      logLevel: "debug",
      tiers: ["web"],
      transport: "zeromq",
    });
    expect(shown.sources).toMatchObject({
      dataDir: "flag",
      ring: "env",
      logLevel: "file",
      tiers: "flag",
      transport: "default",
    });
  });

  it("exits 5 naming the field, its source and what is allowed, for an invalid value", async () => {
    const { code, stdout, stderr } = await runBin("ringd", ["config", "show", "--data-dir", dir], {
      ENJIN_TRANSPORT: "smoke-signals",
    });
    expect(code).toBe(5);
    expect(stdout).toBe("");
    expect(stderr).toBe(
      'ringd: config field "transport" from env ENJIN_TRANSPORT: got "smoke-signals"; allowed: "zeromq" or "nats"\n',
    );
  });
});
