/**
 * The daemon's configuration, merged from four layers. Precedence, highest first:
 *
 *   1. command-line flags   (`--ring 1`, `--tier web --tier db`)
 *   2. environment          (`ENJIN_RING=1`, `ENJIN_TIERS=web,db`)
 *   3. the config file      (`<dataDir>/ringd.json`, or the path in `--config` / `ENJIN_CONFIG`)
 *   4. built-in defaults
 *
 * Each field is taken whole from the highest layer that sets it (lists are not merged across
 * layers). `dataDir` is never read from the file, since the file is found through it. Relative
 * paths are resolved against the working directory (flags, env) or the file's directory (file).
 * Every value is validated; a ConfigError lists each bad value with its field, its source and
 * what is allowed. The same table drives `--help` and docs/cli.md.
 */
import { readFile } from "node:fs/promises";
import { homedir, hostname } from "node:os";
import { dirname, isAbsolute, join, resolve } from "node:path";
import * as v from "valibot";
import { LABEL_PATTERN } from "../../protocol/index.ts";
import {
  CHILDREN_DIR_SUFFIX,
  CONFIG_FIELD_NAMES,
  CONFIG_FIELDS,
  CONFIG_SCHEMAS,
  type ConfigField,
  type ConfigFlags,
  type DaemonConfig,
  DEFAULT_CHILD_PORT_RANGE,
  PATH_FIELDS,
  parsePortRangeText,
} from "./config-fields.ts";
import { ConfigError, ConfigFileError, type ConfigIssue, type ConfigSource } from "./errors.ts";

/** Name of the config file inside the data dir. */
export const CONFIG_FILE_NAME = "ringd.json";
/** Name of the control socket inside the data dir, when not configured. */
export const CONTROL_SOCKET_NAME = "ringd.sock";
/** Largest config file read. */
export const MAX_CONFIG_FILE_BYTES = 64 * 1024;
/** Longest text shown of a bad value in an error. */
const MAX_SHOWN_VALUE_CHARS = 80;

/** What the defaults depend on, so that resolving stays pure and testable. */
export interface ConfigHost {
  /** Working directory, for relative paths in flags and env. */
  readonly cwd: string;
  /** The user's home directory. */
  readonly homeDir: string;
  /** The user's id; 0 picks the system-wide data dir. */
  readonly uid: number;
  /** The machine's host name, for the default node name. */
  readonly hostname: string;
}

/** The host facts of this process: its cwd, home, uid and host name. */
export function processHost(): ConfigHost {
  return { cwd: process.cwd(), homeDir: homedir(), uid: process.getuid?.() ?? -1, hostname: hostname() };
}

/** Everything resolveConfig merges. */
export interface ConfigInputs {
  readonly flags?: ConfigFlags;
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** The parsed config file, if one was read, and its path. */
  readonly file?: { readonly path: string; readonly values: unknown };
  readonly host: ConfigHost;
}

/** A merged, validated configuration and where each field came from. */
export interface ResolvedConfig {
  readonly config: DaemonConfig;
  readonly sources: Readonly<Record<ConfigField, ConfigSource>>;
}

/** A host name made into a label: lowercase, other characters as "-", at most 63, "node" if empty. */
export function hostLabel(hostname: string): string {
  const first = hostname.split(".")[0] ?? "";
  const text = first
    .toLowerCase()
    .replace(/[^a-z0-9._-]/g, "-")
    .replace(/^[^a-z0-9]+/, "")
    .slice(0, 63);
  return LABEL_PATTERN.test(text) ? text : "node";
}

/** The data dir used when neither a flag nor the environment names one. */
export function defaultDataDir(host: ConfigHost, env: Readonly<Record<string, string | undefined>>): string {
  if (host.uid === 0) return "/var/lib/enjin";
  const state = env.XDG_STATE_HOME;
  return join(state && isAbsolute(state) ? state : join(host.homeDir, ".local", "state"), "enjin");
}

/** Turn a flag's or variable's text into the field's type (before validation). */
function fromText(field: ConfigField, text: string | readonly string[], base: string): unknown {
  const items = typeof text === "string" ? [text] : text;
  const one = items[items.length - 1] ?? "";
  switch (field) {
    case "ring":
      return /^[0-9]+$/.test(one) ? Number(one) : one;
    case "compartment":
      return one === "" ? [] : one.split("/");
    case "tiers":
      return items.flatMap((t) => t.split(",")).filter((t) => t !== "");
    case "logFile":
      return one === "-" ? null : resolve(base, one);
    case "dataDir":
    case "controlSocket":
    case "natsCaFile":
    case "childrenDir":
      return resolve(base, one);
    case "childPortRange":
      return parsePortRangeText(one);
    default:
      return one;
  }
}

/** Turn a file's JSON value into the field's type (before validation). */
function fromJson(field: ConfigField, value: unknown, base: string): unknown {
  if (field === "compartment" && typeof value === "string") return value === "" ? [] : value.split("/");
  if (field === "logFile" && value === "-") return null;
  if (field === "childPortRange" && typeof value === "string") return parsePortRangeText(value);
  if (PATH_FIELDS.has(field) && typeof value === "string") return resolve(base, value);
  return value;
}

function shown(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > MAX_SHOWN_VALUE_CHARS ? `${text.slice(0, MAX_SHOWN_VALUE_CHARS)}...` : text;
}

/**
 * Merge flags > env > file > defaults and validate. Throws ConfigError listing every bad value,
 * each with its field, source, what was given and what is allowed. Pure: no I/O.
 */
export function resolveConfig(inputs: ConfigInputs): ResolvedConfig {
  const env = inputs.env ?? {};
  const flags = inputs.flags ?? {};
  const issues: ConfigIssue[] = [];
  const fileValues = inputs.file?.values ?? {};
  const filePath = inputs.file?.path ?? "";
  if (typeof fileValues !== "object" || fileValues === null || Array.isArray(fileValues)) {
    throw new ConfigFileError(`config file ${filePath} must hold a JSON object`);
  }
  const file = fileValues as Record<string, unknown>;
  for (const key of Object.keys(file)) {
    if (!Object.hasOwn(CONFIG_FIELDS, key) || key === "dataDir") {
      issues.push({
        field: key,
        source: "file",
        origin: filePath,
        got: shown(file[key]),
        allowed:
          key === "dataDir"
            ? "nothing: dataDir is set by --data-dir or ENJIN_DATA_DIR, since the file lives in it"
            : `one of the known fields: ${CONFIG_FIELD_NAMES.filter((f) => f !== "dataDir").join(", ")}`,
      });
    }
  }

  const config: Record<string, unknown> = {};
  const sources = {} as Record<ConfigField, ConfigSource>;
  const origins = {} as Record<ConfigField, string>;
  const take = (field: ConfigField): { value: unknown; source: ConfigSource; origin: string } => {
    const spec = CONFIG_FIELDS[field];
    const flag = flags[field];
    if (flag !== undefined)
      return { value: fromText(field, flag, inputs.host.cwd), source: "flag", origin: `--${spec.flag}` };
    const fromEnv = env[spec.env];
    if (fromEnv !== undefined)
      return { value: fromText(field, fromEnv, inputs.host.cwd), source: "env", origin: spec.env };
    if (field !== "dataDir" && Object.hasOwn(file, field)) {
      return { value: fromJson(field, file[field], dirname(filePath)), source: "file", origin: filePath };
    }
    return { value: defaultOf(field), source: "default", origin: "default" };
  };
  const defaultOf = (field: ConfigField): unknown => {
    switch (field) {
      case "dataDir":
        return defaultDataDir(inputs.host, env);
      case "ring":
        return 2;
      case "transport":
        return "zeromq";
      case "listen":
        return "0.0.0.0:7470";
      case "natsUrl":
      case "natsCaFile":
        return null; // not set: a seed runs its own nats-server
      case "controlSocket":
        return join(String(config.dataDir), CONTROL_SOCKET_NAME);
      case "logLevel":
        return "info";
      case "logFile":
        return null;
      case "name":
        return hostLabel(inputs.host.hostname);
      case "compartment":
      case "tiers":
        return [];
      case "childPortRange":
        return { ...DEFAULT_CHILD_PORT_RANGE };
      case "childrenDir":
        return `${String(config.dataDir)}${CHILDREN_DIR_SUFFIX}`;
    }
  };
  for (const field of CONFIG_FIELD_NAMES) {
    const { value, source, origin } = take(field);
    const parsed = v.safeParse(CONFIG_SCHEMAS[field], value);
    if (parsed.success) {
      config[field] = parsed.output;
    } else {
      config[field] = value;
      issues.push({ field, source, origin, got: shown(value), allowed: CONFIG_FIELDS[field].allowed });
    }
    sources[field] = source;
    origins[field] = origin;
  }
  issues.push(...natsIssues(config, sources, origins, issues));
  issues.push(...childrenDirIssues(config, sources, origins, issues));
  if (issues.length > 0) throw new ConfigError(issues);
  return { config: config as unknown as DaemonConfig, sources };
}

/**
 * What the NATS fields must agree on: natsUrl only with transport nats, and natsCaFile exactly
 * when natsUrl is set (an existing cluster's certificates are checked against it). Fields that
 * are already bad on their own are left to their own issue.
 */
function natsIssues(
  config: Record<string, unknown>,
  sources: Readonly<Record<ConfigField, ConfigSource>>,
  origins: Readonly<Record<ConfigField, string>>,
  already: readonly ConfigIssue[],
): ConfigIssue[] {
  const bad = new Set(already.map((i) => i.field));
  if (["transport", "natsUrl", "natsCaFile"].some((f) => bad.has(f))) return [];
  const issue = (field: ConfigField, allowed: string): ConfigIssue => ({
    field,
    source: sources[field],
    origin: origins[field],
    got: shown(config[field]),
    allowed,
  });
  const out: ConfigIssue[] = [];
  if (config.natsUrl !== null && config.transport !== "nats")
    out.push(
      issue(
        "natsUrl",
        `nothing while transport is ${JSON.stringify(config.transport)}: natsUrl is used only with transport "nats"`,
      ),
    );
  if (config.natsUrl !== null && config.natsCaFile === null)
    out.push(
      issue(
        "natsCaFile",
        "a PEM file of the CA that signed the natsUrl servers' certificates: it is required with natsUrl",
      ),
    );
  if (config.natsUrl === null && config.natsCaFile !== null)
    out.push(
      issue(
        "natsCaFile",
        "nothing without natsUrl: a seed's own nats-server is trusted through the join pin",
      ),
    );
  return out;
}

/** childrenDir must neither lie in dataDir nor hold it: children must not reach the node's state. */
function childrenDirIssues(
  config: Record<string, unknown>,
  sources: Readonly<Record<ConfigField, ConfigSource>>,
  origins: Readonly<Record<ConfigField, string>>,
  already: readonly ConfigIssue[],
): ConfigIssue[] {
  if (already.some((i) => i.field === "dataDir" || i.field === "childrenDir")) return [];
  const [children, data] = [String(config.childrenDir), String(config.dataDir)];
  const within = (a: string, b: string) => a === b || a.startsWith(b.endsWith("/") ? b : `${b}/`);
  if (!within(children, data) && !within(data, children)) return [];
  return [
    {
      field: "childrenDir",
      source: sources.childrenDir,
      origin: origins.childrenDir,
      got: shown(config.childrenDir),
      allowed: `a directory outside dataDir ${data} (and not holding it): children must not reach the node's state`,
    },
  ];
}

/** Options of loadConfig: the layers above the file, and the host facts (taken from the process if absent). */
export interface LoadConfigOptions {
  readonly flags?: ConfigFlags;
  /** `--config PATH`: read this file instead of <dataDir>/ringd.json; it must exist. */
  readonly configFile?: string;
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly host: ConfigHost;
}

/**
 * Find and read the config file (from `configFile`, then ENJIN_CONFIG, then <dataDir>/ringd.json,
 * which may be absent), then resolveConfig. Throws ConfigFileError for an unreadable, oversized
 * or non-JSON file, ConfigError for bad values.
 */
export async function loadConfig(options: LoadConfigOptions): Promise<ResolvedConfig & { file: string }> {
  const env = options.env ?? {};
  const explicit = options.configFile ?? env.ENJIN_CONFIG;
  let file: string;
  if (explicit !== undefined) {
    file = resolve(options.host.cwd, explicit);
  } else {
    const flags = options.flags ?? {};
    const raw = flags.dataDir ?? env[CONFIG_FIELDS.dataDir.env];
    const dataDir =
      raw === undefined
        ? defaultDataDir(options.host, env)
        : String(fromText("dataDir", raw, options.host.cwd));
    file = join(dataDir, CONFIG_FILE_NAME);
  }
  let text: string | undefined;
  try {
    const bytes = await readFile(file);
    if (bytes.length > MAX_CONFIG_FILE_BYTES) {
      throw new ConfigFileError(
        `config file ${file} has ${bytes.length} bytes; MAX_CONFIG_FILE_BYTES is ${MAX_CONFIG_FILE_BYTES}`,
      );
    }
    text = bytes.toString("utf8");
  } catch (err) {
    if (err instanceof ConfigFileError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "ENOENT" || explicit !== undefined) {
      throw new ConfigFileError(`cannot read config file ${file}: ${(err as Error).message}`, { cause: err });
    }
  }
  let values: unknown = {};
  if (text !== undefined) {
    try {
      values = JSON.parse(text);
    } catch (err) {
      throw new ConfigFileError(`config file ${file} is not valid JSON: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }
  const resolved = resolveConfig({
    flags: options.flags,
    env,
    file: { path: file, values },
    host: options.host,
  });
  return { ...resolved, file };
}
