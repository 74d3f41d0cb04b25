/**
 * The command-line framework shared by ringd and ringctl. A program is a list of commands named
 * `<noun> <verb>` (or a single word for the few frequent ones: `version`, `help`). runCli parses
 * with node:util parseArgs, prints man-page help (help.ts), and maps what a command returns or
 * throws to an exit code (exit-codes.ts). Streams, following tailscale's CLI rules: the result a
 * command was asked for goes to stdout (as text, or one JSON object with --json); everything else
 * (progress, notes, warnings, errors) goes to stderr. `--help` output is a result: stdout.
 */
import { parseArgs } from "node:util";
import { CliError, UsageError } from "./errors.ts";
import { ExitCode, exitCodeFor } from "./exit-codes.ts";
import { GLOBAL_OPTIONS, renderCommandHelp, renderProgramHelp, suggest } from "./help.ts";

/** An option of a command, as parseArgs takes it plus help text. */
export interface OptionSpec {
  readonly type: "string" | "boolean";
  readonly short?: string;
  /** May be given more than once; its value is then a list. */
  readonly multiple?: boolean;
  /** Placeholder for the value in help, e.g. "PATH". */
  readonly valueName?: string;
  /** What it does; full sentences. */
  readonly description: string;
  /** The environment variable that sets the same thing, shown in help. */
  readonly env?: string;
}

/** A positional argument of a command. */
export interface ArgumentSpec {
  readonly name: string;
  readonly description: string;
  readonly required?: boolean;
  /** Takes all remaining positionals (last argument only). */
  readonly variadic?: boolean;
}

/** One example in a command's help. */
export interface ExampleSpec {
  readonly command: string;
  readonly description: string;
}

/** One command: its words, its help, and what it does. */
export interface CommandSpec {
  /** The words that invoke it after the program name: ["token", "create"], or ["version"]. */
  readonly words: readonly string[];
  /** One line for NAME and command lists, lowercase, no final period. */
  readonly summary: string;
  /** DESCRIPTION: paragraphs separated by blank lines. */
  readonly description: string;
  readonly options?: Readonly<Record<string, OptionSpec>>;
  readonly arguments?: readonly ArgumentSpec[];
  /** The fields of the --json result, for a JSON OUTPUT section. */
  readonly jsonOutput?: string;
  /** Exit codes this command may end with, besides 0, 2 and 70 (always listed). */
  readonly exitCodes?: readonly ExitCode[];
  readonly examples: readonly ExampleSpec[];
  /** Do the work; return an exit code (default Ok) or throw (mapped by exitCodeFor). */
  run(ctx: CommandContext): Promise<ExitCode | undefined> | ExitCode | undefined;
}

/** A program (ringd or ringctl): its name, help and commands. */
export interface ProgramSpec {
  readonly name: string;
  readonly summary: string;
  readonly description: string;
  readonly commands: readonly CommandSpec[];
}

/** Where a command's output goes and what it may read; the process's own in production. */
export interface CliIO {
  readonly stdout: { write(text: string): unknown };
  readonly stderr: { write(text: string): unknown };
  readonly env: Readonly<Record<string, string | undefined>>;
}

/** Parsed option values, by option name. */
export type OptionValues = Readonly<Record<string, string | boolean | readonly string[] | undefined>>;

/** What a running command sees. */
export interface CommandContext {
  readonly program: ProgramSpec;
  readonly command: CommandSpec;
  readonly values: OptionValues;
  readonly positionals: readonly string[];
  /** --json was given. */
  readonly json: boolean;
  readonly io: CliIO;
  /** Write the result to stdout: `value` as one JSON line with --json, else the human text. */
  result(value: unknown, human: string | (() => string)): void;
  /** Write an informational line to stderr (never stdout, so pipes stay clean). */
  info(text: string): void;
}

const HELP_WORD = "help";

/** The built-in `help [<noun> [<verb>]]` command, added to every program. */
function helpCommand(program: ProgramSpec): CommandSpec {
  return {
    words: [HELP_WORD],
    summary: "show help for a command, or list the commands",
    description:
      `With no command, list ${program.name}'s commands. With a command, print its manual: what it ` +
      "does, its options, what --json prints, its exit status and examples. The same manual is " +
      `printed by '${program.name} <command> --help'.`,
    arguments: [{ name: "COMMAND", description: "The noun and verb of a command.", variadic: true }],
    jsonOutput: '{"help": TEXT} where TEXT is the help as printed without --json.',
    examples: [
      { command: `${program.name} help`, description: "List every command." },
      { command: `${program.name} help version`, description: "Show the manual of the version command." },
    ],
    run(ctx) {
      const words = ctx.positionals;
      const full = ctx.program;
      if (words.length === 0) {
        const text = renderProgramHelp(full);
        ctx.result({ help: text }, text);
        return ExitCode.Ok;
      }
      const found = resolveCommand(full, words);
      if (found.rest.length > 0)
        throw new UsageError(`no command '${words.join(" ")}'. Run '${full.name} help'.`);
      const text = found.command ? renderCommandHelp(full, found.command) : renderProgramHelp(full, words[0]);
      ctx.result({ help: text }, text);
      return ExitCode.Ok;
    },
  };
}

function withHelp(program: ProgramSpec): ProgramSpec {
  if (program.commands.some((c) => c.words[0] === HELP_WORD)) return program;
  return { ...program, commands: [...program.commands, helpCommand(program)] };
}

/** Find the command `argv` names; throws UsageError naming the unknown word and likely fixes. */
function resolveCommand(
  program: ProgramSpec,
  argv: readonly string[],
): { command: CommandSpec | undefined; rest: string[] } {
  const noun = argv[0] ?? "";
  const nouns = [...new Set(program.commands.map((c) => c.words[0]!))];
  const underNoun = program.commands.filter((c) => c.words[0] === noun);
  if (underNoun.length === 0) {
    const hints = suggest(noun, nouns);
    throw new UsageError(
      `unknown command '${noun}'` +
        (hints.length > 0 ? `; did you mean ${hints.map((h) => `'${h}'`).join(" or ")}?` : ".") +
        ` Run '${program.name} help' for the list of commands.`,
    );
  }
  const single = underNoun.find((c) => c.words.length === 1);
  if (single) return { command: single, rest: argv.slice(1) };
  const verb = argv[1];
  if (verb === undefined || verb.startsWith("-")) return { command: undefined, rest: argv.slice(1) };
  const command = underNoun.find((c) => c.words[1] === verb);
  if (command) return { command, rest: argv.slice(2) };
  const verbs = underNoun.map((c) => c.words[1]!);
  const hints = suggest(verb, verbs);
  throw new UsageError(
    `unknown command '${noun} ${verb}'` +
      (hints.length > 0 ? `; did you mean ${hints.map((h) => `'${noun} ${h}'`).join(" or ")}?` : ".") +
      ` The verbs of '${noun}' are: ${verbs.join(", ")}.`,
  );
}

/** Check every option token against the known ones, so an unknown one gets a helpful message. */
function checkOptionNames(
  program: ProgramSpec,
  command: CommandSpec,
  args: readonly string[],
  options: Readonly<Record<string, OptionSpec>>,
): void {
  const longs = Object.keys(options);
  const shorts = new Set(Object.values(options).flatMap((o) => (o.short ? [o.short] : [])));
  const where = [program.name, ...command.words].join(" ");
  for (const arg of args) {
    if (arg === "--") return;
    let unknown: string | undefined;
    if (arg.startsWith("--")) {
      const name = arg.slice(2).split("=")[0]!;
      if (!Object.hasOwn(options, name)) unknown = `--${name}`;
    } else if (arg.startsWith("-") && arg.length > 1) {
      const bad = [...arg.slice(1)].find((c) => !shorts.has(c));
      if (bad !== undefined) unknown = `-${bad}`;
    }
    if (unknown !== undefined) {
      const hints = suggest(unknown.replace(/^-+/, ""), longs).map((h) => `--${h}`);
      throw new UsageError(
        `unknown option '${unknown}' for '${where}'` +
          (hints.length > 0 ? `; did you mean ${hints.join(" or ")}?` : ".") +
          ` Run '${where} --help' for its options.`,
      );
    }
  }
}

/**
 * Run `program` on `argv` (without node and script paths). Returns the exit code; never throws
 * and never calls process.exit, so it runs the same in tests and in the real binaries.
 */
export async function runCli(spec: ProgramSpec, argv: readonly string[], io: CliIO): Promise<ExitCode> {
  const program = withHelp(spec);
  let json = argv.includes("--json");
  const fail = (err: unknown): ExitCode => {
    const exitCode = exitCodeFor(err);
    const error = err instanceof Error ? err : new Error(String(err));
    const message =
      exitCode === ExitCode.Internal && !(err instanceof CliError)
        ? `internal error: ${error.message} (this is a bug; please report it)`
        : error.message;
    if (json) io.stderr.write(`${JSON.stringify({ error: { name: error.name, message, exitCode } })}\n`);
    else
      io.stderr.write(
        message
          .split("\n")
          .map((line) => `${program.name}: ${line}\n`)
          .join(""),
      );
    return exitCode;
  };
  try {
    // Global flags may come before the command words: `ringctl --json version`.
    let start = 0;
    let wantsHelp = false;
    while (start < argv.length && argv[start]!.startsWith("-")) {
      const flag = argv[start]!;
      if (flag === "--json") json = true;
      else if (flag === "--help" || flag === "-h") wantsHelp = true;
      else throw new UsageError(`unknown option '${flag}' before the command. Run '${program.name} help'.`);
      start++;
    }
    const words = argv.slice(start);
    if (words.length === 0) {
      if (wantsHelp) {
        io.stdout.write(renderProgramHelp(program));
        return ExitCode.Ok;
      }
      io.stderr.write(renderProgramHelp(program));
      throw new UsageError(`missing command. Run '${program.name} help' for the list of commands.`);
    }
    const { command, rest } = resolveCommand(program, words);
    if (command === undefined) {
      const noun = words[0]!;
      if (wantsHelp || rest.includes("--help") || rest.includes("-h")) {
        io.stdout.write(renderProgramHelp(program, noun));
        return ExitCode.Ok;
      }
      io.stderr.write(renderProgramHelp(program, noun));
      throw new UsageError(`'${noun}' needs a verb. Run '${program.name} help ${noun}' for its verbs.`);
    }
    const options = { ...command.options, ...GLOBAL_OPTIONS };
    checkOptionNames(program, command, rest, options);
    let parsed: ReturnType<typeof parseArgs>;
    try {
      parsed = parseArgs({
        args: [...rest],
        options: Object.fromEntries(
          Object.entries(options).map(([name, o]) => [
            name,
            { type: o.type, multiple: o.multiple ?? false, ...(o.short ? { short: o.short } : {}) },
          ]),
        ),
        allowPositionals: true,
        strict: true,
      });
    } catch (err) {
      throw new UsageError(
        `${(err as Error).message} Run '${program.name} ${command.words.join(" ")} --help' for usage.`,
        { cause: err },
      );
    }
    const values = parsed.values as OptionValues;
    if (wantsHelp || values.help === true) {
      io.stdout.write(renderCommandHelp(program, command));
      return ExitCode.Ok;
    }
    checkPositionals(program, command, parsed.positionals);
    const ctx: CommandContext = {
      program,
      command,
      values,
      positionals: parsed.positionals,
      json,
      io,
      result(value, human) {
        io.stdout.write(
          json ? `${JSON.stringify(value)}\n` : withNewline(typeof human === "string" ? human : human()),
        );
      },
      info(text) {
        io.stderr.write(withNewline(text));
      },
    };
    return (await command.run(ctx)) ?? ExitCode.Ok;
  } catch (err) {
    return fail(err);
  }
}

function checkPositionals(program: ProgramSpec, command: CommandSpec, positionals: readonly string[]): void {
  const specs = command.arguments ?? [];
  const where = `${program.name} ${command.words.join(" ")}`;
  const required = specs.filter((a) => a.required).length;
  const variadic = specs.some((a) => a.variadic);
  if (positionals.length < required) {
    const missing = specs.filter((a) => a.required)[positionals.length]!;
    throw new UsageError(`'${where}' needs ${missing.name}. Run '${where} --help' for usage.`);
  }
  if (!variadic && positionals.length > specs.length) {
    throw new UsageError(
      `'${where}' takes ${specs.length === 0 ? "no arguments" : `at most ${specs.length}`}, ` +
        `got '${positionals.slice(specs.length).join(" ")}'. Run '${where} --help' for usage.`,
    );
  }
}

function withNewline(text: string): string {
  return text.endsWith("\n") ? text : `${text}\n`;
}
