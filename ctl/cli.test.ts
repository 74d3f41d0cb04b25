import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { type CommandSpec, type ProgramSpec, runCli } from "./cli.ts";
import { connectDaemon, DAEMON_OPTIONS } from "./daemon-client.ts";
import { UsageError } from "./errors.ts";
import { ExitCode } from "./exit-codes.ts";
import { suggest } from "./help.ts";

const calls: unknown[] = [];

const greet: CommandSpec = {
  words: ["greeting", "send"],
  summary: "send a greeting",
  description: "Send a greeting to NAME.",
  options: {
    loud: { type: "boolean", short: "l", description: "Shout it." },
    tier: { type: "string", multiple: true, valueName: "TIER", description: "Send to this tier." },
  },
  arguments: [{ name: "NAME", description: "Who to greet.", required: true }],
  exitCodes: [ExitCode.TargetFailed],
  examples: [{ command: "demo greeting send ada", description: "Greet Ada." }],
  run(ctx) {
    calls.push({ values: ctx.values, positionals: ctx.positionals });
    ctx.info("sending...");
    ctx.result({ sent: ctx.positionals[0] }, `sent to ${ctx.positionals[0]}`);
    return ctx.values.loud ? ExitCode.TargetFailed : undefined;
  },
};

const program: ProgramSpec = {
  name: "demo",
  summary: "a demo program",
  description: "A program to test the framework.",
  commands: [
    greet,
    { ...greet, words: ["greeting", "list"], summary: "list greetings", arguments: [] },
    {
      words: ["status"],
      summary: "ask the daemon",
      description: "Ask the daemon for its status.",
      options: DAEMON_OPTIONS,
      examples: [],
      async run(ctx) {
        const client = await connectDaemon(ctx);
        try {
          const status = await client.call("status", null, (p) => ctx.info(`progress: ${JSON.stringify(p)}`));
          ctx.result(status, `status: ${JSON.stringify(status)}`);
        } finally {
          client.close();
        }
        return undefined;
      },
    },
    {
      words: ["crash"],
      summary: "throw a bug",
      description: "Throws a TypeError.",
      examples: [],
      run() {
        throw new TypeError("oops");
      },
    },
  ],
};

async function runDemo(env: Record<string, string>, ...argv: string[]) {
  let stdout = "";
  let stderr = "";
  const code = await runCli(program, argv, {
    stdout: { write: (t: string) => (stdout += t) },
    stderr: { write: (t: string) => (stderr += t) },
    env,
  });
  return { code, stdout, stderr };
}

const run = (...argv: string[]) => runDemo({}, ...argv);

describe("runCli dispatch", () => {
  it("runs <noun> <verb> with options and arguments; result on stdout, info on stderr", async () => {
    calls.length = 0;
    expect(await run("greeting", "send", "ada", "--tier", "web", "--tier", "db")).toEqual({
      code: 0,
      stdout: "sent to ada\n",
      stderr: "sending...\n",
    });
    expect(calls[0]).toMatchObject({ values: { tier: ["web", "db"] }, positionals: ["ada"] });
    expect((await run("greeting", "send", "ada", "-l")).code).toBe(ExitCode.TargetFailed);
  });

  it("prints one JSON object on stdout with --json, before or after the command", async () => {
    for (const argv of [
      ["--json", "greeting", "send", "ada"],
      ["greeting", "send", "ada", "--json"],
    ]) {
      const { code, stdout } = await run(...argv);
      expect(code).toBe(0);
      expect(JSON.parse(stdout)).toEqual({ sent: "ada" });
    }
  });

  it("says what was wrong and what to do, exit 2, for unknown commands, verbs and options", async () => {
    const cases: [string[], RegExp][] = [
      [["greting", "send"], /unknown command 'greting'; did you mean 'greeting'\? Run 'demo help'/],
      [
        ["greeting", "sned"],
        /unknown command 'greeting sned'; did you mean 'greeting send'\?.*verbs of 'greeting' are: send, list/,
      ],
      [
        ["greeting", "send", "ada", "--lowd"],
        /unknown option '--lowd' for 'demo greeting send'; did you mean --loud\? Run 'demo greeting send --help'/,
      ],
      [["greeting", "send", "ada", "-x"], /unknown option '-x'/],
      [["greeting", "send"], /'demo greeting send' needs NAME/],
      [["greeting", "list", "extra"], /takes no arguments, got 'extra'/],
      [["greeting", "send", "ada", "--tier"], /Run 'demo greeting send --help' for usage/],
      [["greeting"], /'greeting' needs a verb/],
      [[], /missing command/],
    ];
    for (const [argv, message] of cases) {
      const { code, stdout, stderr } = await run(...argv);
      expect(code, argv.join(" ")).toBe(ExitCode.Usage);
      expect(stdout, argv.join(" ")).toBe("");
      expect(stderr, argv.join(" ")).toMatch(message);
    }
  });

  it("writes errors as JSON on stderr with --json, and nothing on stdout", async () => {
    const { code, stdout, stderr } = await run("--json", "nope");
    expect(code).toBe(2);
    expect(stdout).toBe("");
    expect(JSON.parse(stderr)).toEqual({
      error: { name: "UsageError", message: expect.stringContaining("unknown command 'nope'"), exitCode: 2 },
    });
  });

  it("maps a daemon that is not running to exit 3, with the fix in the message", async () => {
    const missing = join(tmpdir(), "enjin-no-such-dir", "ringd.sock");
    const { code, stderr } = await run("status", "--control-socket", missing);
    expect(code).toBe(ExitCode.Unreachable);
    expect(stderr).toBe(
      `demo: no control socket at ${missing}: is ringd running? start it with \`ringd start\`\n`,
    );
  });

  it("maps an unexpected error to exit 70 and calls it a bug", async () => {
    const { code, stderr } = await run("crash");
    expect(code).toBe(ExitCode.Internal);
    expect(stderr).toBe("demo: internal error: oops (this is a bug; please report it)\n");
  });
});

describe("help", () => {
  it("prints a man page on stdout for --help, -h and help <command>", async () => {
    const pages = await Promise.all([
      run("greeting", "send", "--help"),
      run("greeting", "send", "-h"),
      run("help", "greeting", "send"),
    ]);
    for (const page of pages) {
      expect(page.code).toBe(0);
      expect(page.stderr).toBe("");
      expect(page.stdout).toBe(pages[0]!.stdout);
    }
    const text = pages[0]!.stdout;
    const sections = ["NAME", "SYNOPSIS", "DESCRIPTION", "ARGUMENTS", "OPTIONS", "EXIT STATUS", "EXAMPLES"];
    expect(text.split("\n").filter((l) => /^[A-Z][A-Z ]*$/.test(l))).toEqual(sections);
    expect(text).toContain("demo greeting send - send a greeting");
    expect(text).toContain("demo greeting send [options] NAME");
    expect(text).toContain("-l, --loud");
    expect(text).toContain("--tier TIER");
    expect(text).toMatch(/^ {4}1 {3}the command ran, but at least one target failed/m);
    expect(text.split("\n").every((l) => l.length <= 80)).toBe(true);
  });

  it("lists commands for help, --help, and a noun's verbs for help <noun>", async () => {
    const all = await run("help");
    expect(all.stdout).toMatch(/COMMANDS\n {4}greeting send +send a greeting\n/);
    expect((await run("--help")).stdout).toBe(all.stdout);
    const noun = await run("help", "greeting");
    expect(noun.stdout).toContain("greeting list");
    expect(noun.stdout).not.toContain("ask the daemon");
    expect((await run("help", "nope")).code).toBe(2);
  });
});

describe("suggest", () => {
  it("offers close names only", () => {
    expect(suggest("verison", ["version", "help", "token"])).toEqual(["version"]);
    expect(suggest("zzz", ["version", "help"])).toEqual([]);
    expect(new UsageError("x").exitCode).toBe(2);
  });
});
