/**
 * Checking a ChildSpec (driver.ts) from outside input: the fields every strategy shares. Each driver
 * then checks what is its own (limits it can enforce, its `driver` settings, its binary). A bad spec
 * is an InvalidSpecError naming the field and what it must be; nothing is changed.
 */
import type { ChildLimits, ChildSpec } from "./driver.ts";
import { InvalidSpecError } from "./errors.ts";

/** A child's name: used for directories, users and cgroups, so short and plain. */
export const CHILD_NAME_PATTERN = /^[a-z0-9][a-z0-9-]{0,31}$/;
/** Environment variable names a spec may set. */
export const ENV_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
/** Most arguments of a command (the program included). */
export const MAX_COMMAND_ARGS = 256;
/** Most environment variables of a spec. */
export const MAX_ENV_VARS = 256;
/** Longest argument or environment value. */
export const MAX_SPEC_STRING_CHARS = 4096;
/** Largest spec as JSON: it is saved with the child's record, which the store bounds at 64 KiB. */
export const MAX_SPEC_JSON_CHARS = 32 * 1024;

const LIMIT_FIELDS: readonly (keyof ChildLimits)[] = ["memoryBytes", "pids", "cpuMillis", "openFiles"];
const SPEC_FIELDS = ["name", "command", "env", "limits", "driver"];

const isRecord = (x: unknown): x is Record<string, unknown> =>
  typeof x === "object" && x !== null && !Array.isArray(x);

function checkString(value: unknown, what: string): string {
  if (typeof value !== "string" || value.length > MAX_SPEC_STRING_CHARS || value.includes("\0"))
    throw new InvalidSpecError(
      `${what} must be a string of at most ${MAX_SPEC_STRING_CHARS} characters without NUL`,
    );
  return value;
}

/** Throw InvalidSpecError unless `name` is a valid child name. */
export function checkChildName(name: unknown): string {
  if (typeof name !== "string" || !CHILD_NAME_PATTERN.test(name))
    throw new InvalidSpecError(
      `child name must be 1-32 characters of a-z, 0-9 and "-", starting with a letter or digit; got ${JSON.stringify(name)}`,
    );
  return name;
}

/**
 * A checked copy of a spec from outside input: name, command (non-empty list of strings), env (names
 * like `A_B1`, string values), limits (positive whole numbers), driver (an object, checked by the
 * driver). Unknown fields are refused.
 */
export function childSpec(input: unknown): ChildSpec {
  if (!isRecord(input))
    throw new InvalidSpecError("a child spec must be an object with a name and a command");
  for (const key of Object.keys(input))
    if (!SPEC_FIELDS.includes(key))
      throw new InvalidSpecError(
        `child spec has an unknown field "${key}"; known: ${SPEC_FIELDS.join(", ")}`,
      );
  const name = checkChildName(input.name);
  const command = input.command;
  if (!Array.isArray(command) || command.length === 0 || command.length > MAX_COMMAND_ARGS)
    throw new InvalidSpecError(
      `command must be a list of 1..${MAX_COMMAND_ARGS} strings, the program first (e.g. ["/usr/bin/node", "app.js"])`,
    );
  command.forEach((arg, i) => {
    checkString(arg, `command[${i}]`);
  });
  if (command[0] === "") throw new InvalidSpecError("command[0] (the program) must not be empty");
  const spec: { -readonly [K in keyof ChildSpec]: ChildSpec[K] } = { name, command: [...command] };
  if (input.env !== undefined) {
    if (!isRecord(input.env)) throw new InvalidSpecError("env must be an object of NAME: value strings");
    const entries = Object.entries(input.env);
    if (entries.length > MAX_ENV_VARS)
      throw new InvalidSpecError(`env has ${entries.length} variables, at most ${MAX_ENV_VARS}`);
    for (const [key, value] of entries) {
      if (!ENV_NAME_PATTERN.test(key))
        throw new InvalidSpecError(`env name ${JSON.stringify(key)} must match ${ENV_NAME_PATTERN.source}`);
      checkString(value, `env ${key}`);
    }
    spec.env = Object.fromEntries(entries) as Record<string, string>;
  }
  if (input.limits !== undefined) {
    if (!isRecord(input.limits))
      throw new InvalidSpecError("limits must be an object such as { memoryBytes: 268435456 }");
    const limits: Record<string, number> = {};
    for (const [key, value] of Object.entries(input.limits)) {
      if (!LIMIT_FIELDS.includes(key as keyof ChildLimits))
        throw new InvalidSpecError(`limits has an unknown field "${key}"; known: ${LIMIT_FIELDS.join(", ")}`);
      if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1)
        throw new InvalidSpecError(`limits ${key} must be a positive whole number, got ${String(value)}`);
      limits[key] = value;
    }
    spec.limits = limits;
  }
  if (input.driver !== undefined) {
    if (!isRecord(input.driver)) throw new InvalidSpecError("driver settings must be an object");
    spec.driver = { ...input.driver };
  }
  const json = JSON.stringify(spec);
  if (json.length > MAX_SPEC_JSON_CHARS)
    throw new InvalidSpecError(
      `the spec is ${json.length} characters as JSON, at most ${MAX_SPEC_JSON_CHARS}`,
    );
  return spec;
}
