/**
 * Help text in the shape of a man page: NAME, SYNOPSIS, DESCRIPTION, OPTIONS, JSON OUTPUT,
 * EXIT STATUS, EXAMPLES. Plain ASCII, wrapped at HELP_WIDTH_CHARS, no colour: it reads the same
 * in a terminal, a pipe and a screen reader.
 */
import type { CommandSpec, OptionSpec, ProgramSpec } from "./cli.ts";
import { EXIT_CODE_MEANINGS, ExitCode } from "./exit-codes.ts";

/** Width help text is wrapped to. */
export const HELP_WIDTH_CHARS = 80;
const INDENT = "    ";

/** Options every command accepts. */
export const GLOBAL_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  json: {
    type: "boolean",
    description:
      "Print the result as JSON on stdout: one object, stable field names (fields are only ever added). " +
      'Errors go to stderr as {"error": {"name", "message", "exitCode"}}.',
  },
  help: { type: "boolean", short: "h", description: "Print this help on stdout and exit 0." },
};

/** Wrap `text` (paragraphs separated by blank lines) to the help width at `indent`. */
export function wrap(text: string, indent = INDENT): string {
  const width = HELP_WIDTH_CHARS - indent.length;
  return text
    .trim()
    .split(/\n\s*\n/)
    .map((paragraph) => {
      const lines: string[] = [];
      let line = "";
      for (const word of paragraph.split(/\s+/).filter(Boolean)) {
        if (line !== "" && line.length + 1 + word.length > width) {
          lines.push(line);
          line = word;
        } else {
          line = line === "" ? word : `${line} ${word}`;
        }
      }
      if (line !== "") lines.push(line);
      return lines.map((l) => indent + l).join("\n");
    })
    .join("\n\n");
}

/** "--name VALUE" or "-n, --name" as shown in help. */
export function optionLabel(name: string, spec: OptionSpec): string {
  const long = spec.type === "string" ? `--${name} ${spec.valueName ?? "VALUE"}` : `--${name}`;
  return spec.short ? `-${spec.short}, ${long}` : long;
}

/** The words that invoke a command, e.g. "ringctl token create". */
export function commandLine(program: ProgramSpec, command: CommandSpec): string {
  return [program.name, ...command.words].join(" ");
}

function synopsis(program: ProgramSpec, command: CommandSpec): string {
  const parts = [commandLine(program, command), "[options]"];
  for (const arg of command.arguments ?? []) {
    const name = arg.variadic ? `${arg.name}...` : arg.name;
    parts.push(arg.required ? name : `[${name}]`);
  }
  return INDENT + parts.join(" ");
}

/** The man page of one command. */
export function renderCommandHelp(program: ProgramSpec, command: CommandSpec): string {
  const out: string[] = [];
  out.push("NAME", `${INDENT}${commandLine(program, command)} - ${command.summary}`, "");
  out.push("SYNOPSIS", synopsis(program, command), "");
  out.push("DESCRIPTION", wrap(command.description), "");
  if ((command.arguments ?? []).length > 0) {
    out.push("ARGUMENTS");
    for (const arg of command.arguments ?? []) {
      out.push(INDENT + arg.name, wrap(arg.description, INDENT + INDENT));
    }
    out.push("");
  }
  out.push("OPTIONS");
  for (const [name, spec] of Object.entries({ ...command.options, ...GLOBAL_OPTIONS })) {
    const notes = [spec.multiple ? "May be repeated." : "", spec.env ? `Environment: ${spec.env}.` : ""];
    out.push(INDENT + optionLabel(name, spec), wrap([spec.description, ...notes].join(" "), INDENT + INDENT));
  }
  out.push("");
  if (command.jsonOutput) out.push("JSON OUTPUT", wrap(command.jsonOutput), "");
  out.push("EXIT STATUS");
  const codes = new Set<ExitCode>([
    ExitCode.Ok,
    ...(command.exitCodes ?? []),
    ExitCode.Usage,
    ExitCode.Internal,
  ]);
  for (const code of [...codes].sort((a, b) => a - b)) {
    out.push(`${INDENT}${String(code).padEnd(4)}${EXIT_CODE_MEANINGS[code]}`);
  }
  out.push("");
  out.push("EXAMPLES");
  for (const example of command.examples) {
    out.push(`${INDENT}${example.command}`, wrap(example.description, INDENT + INDENT), "");
  }
  return `${out.join("\n").trimEnd()}\n`;
}

/** The overview of a program, or of one noun's verbs when `noun` is given. */
export function renderProgramHelp(program: ProgramSpec, noun?: string): string {
  const commands = program.commands.filter((c) => noun === undefined || c.words[0] === noun);
  const width = Math.max(...commands.map((c) => c.words.join(" ").length));
  const out: string[] = [];
  const title = noun
    ? `${program.name} ${noun} - the ${noun} commands`
    : `${program.name} - ${program.summary}`;
  out.push("NAME", INDENT + title, "");
  out.push("SYNOPSIS", `${INDENT}${program.name} ${noun ?? "<noun>"} <verb> [options]`, "");
  if (noun === undefined) out.push("DESCRIPTION", wrap(program.description), "");
  out.push("COMMANDS");
  for (const command of commands) {
    out.push(`${INDENT}${command.words.join(" ").padEnd(width)}  ${command.summary}`);
  }
  out.push("");
  out.push(
    wrap(
      `Run '${program.name} help <command>' or '${program.name} <command> --help' for a command's options, ` +
        "exit status and examples. Every command takes --json.",
      "",
    ),
  );
  return `${out.join("\n").trimEnd()}\n`;
}

/** Up to three known names closest to `typed` (edit distance at most 2 or a shared prefix). */
export function suggest(typed: string, known: readonly string[]): string[] {
  return known
    .map((name) => ({ name, d: editDistance(typed, name) }))
    .filter(({ name, d }) => d <= 2 || (typed.length >= 3 && name.startsWith(typed)))
    .sort((a, b) => a.d - b.d || a.name.localeCompare(b.name))
    .slice(0, 3)
    .map(({ name }) => name);
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current.push(Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + cost));
    }
    previous = current;
  }
  return previous[b.length]!;
}
