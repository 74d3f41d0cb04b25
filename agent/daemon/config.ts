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
import { LABEL_PATTERN, MAX_COMPARTMENT_DEPTH, MAX_TIERS } from "../../protocol/index.ts";
import { ConfigError, ConfigFileError, type ConfigIssue, type ConfigSource } from "./errors.ts";

/** Name of the config file inside the data dir. */
export const CONFIG_FILE_NAME = "ringd.json";
/** Name of the control socket inside the data dir, when not configured. */
export const CONTROL_SOCKET_NAME = "ringd.sock";
/** Largest config file read. */
export const MAX_CONFIG_FILE_BYTES = 64 * 1024;
/** Longest control socket path: sun_path is 108 bytes on Linux, 104 on the BSDs and macOS (with NUL). */
export const MAX_SOCKET_PATH_BYTES = 103;
/** Longest file path accepted for dataDir and logFile. */
export const MAX_PATH_BYTES = 4096;
/** Longest text shown of a bad value in an error. */
const MAX_SHOWN_VALUE_CHARS = 80;

/** Log levels, most to least severe; "silent" logs nothing. */
export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
/** One of LOG_LEVELS. */
export type LogLevel = (typeof LOG_LEVELS)[number];
/** Transports a daemon can use between nodes. */
export const TRANSPORTS = ["zeromq", "nats"] as const;

/** The daemon's configuration after merging and validation. */
export interface DaemonConfig {
  /** Where the node keeps its key, its LevelDB, its config file and its control socket. */
  readonly dataDir: string;
  /** The ring this node plays: 0 meta, 1 infrastructure, 2 platform. */
  readonly ring: 0 | 1 | 2;
  /** How this node talks to its peers. */
  readonly transport: (typeof TRANSPORTS)[number];
  /** host:port the node listens on for peers (ZeroMQ). */
  readonly listen: string;
  /** The NATS server to use when transport is "nats". */
  readonly natsUrl: string;
  /** Path of the control socket ringctl talks to. */
  readonly controlSocket: string;
  /** Least severe level logged. */
  readonly logLevel: LogLevel;
  /** Log file path; null logs to stderr. */
  readonly logFile: string | null;
  /** This node's name (a label). */
  readonly name: string;
  /** Where the node is, outermost first, e.g. ["eu", "dc1", "rack3"]. */
  readonly compartment: readonly string[];
  /** The node's roles, e.g. ["web"]. */
  readonly tiers: readonly string[];
}

/** A field of DaemonConfig. */
export type ConfigField = keyof DaemonConfig;

/** Raw flag values, as node:util parseArgs gives them, keyed by field. */
export type ConfigFlags = Partial<Record<ConfigField, string | readonly string[]>>;

/** How one field is named in each layer and what it allows. */
export interface ConfigFieldSpec {
  /** Long flag name without dashes, e.g. "data-dir". */
  readonly flag: string;
  /** Environment variable, e.g. "ENJIN_DATA_DIR". */
  readonly env: string;
  /** Placeholder shown in help, e.g. "PATH". */
  readonly valueName: string;
  /** What it is, one line. */
  readonly description: string;
  /** What is allowed, in words (used in errors and help). */
  readonly allowed: string;
  /** The flag may repeat (each adds one list item). */
  readonly multiple?: boolean;
}

const label = v.pipe(v.string(), v.regex(LABEL_PATTERN));
const LABEL_WORDS = "lowercase letters, digits, '.', '_', '-'; starting alphanumeric; at most 63";
const path = v.pipe(v.string(), v.check(isAbsolute), v.maxBytes(MAX_PATH_BYTES));

/** Every field's names, help text and allowed values, in display order. */
export const CONFIG_FIELDS: Readonly<Record<ConfigField, ConfigFieldSpec>> = {
  dataDir: {
    flag: "data-dir",
    env: "ENJIN_DATA_DIR",
    valueName: "DIR",
    description: "Directory of the node's key, database, config file and control socket.",
    allowed: "a directory path (default /var/lib/enjin as root, else $XDG_STATE_HOME/enjin or ~/.local/state/enjin)",
  },
  ring: {
    flag: "ring",
    env: "ENJIN_RING",
    valueName: "N",
    description: "The ring this node plays.",
    allowed: "0, 1 or 2",
  },
  transport: {
    flag: "transport",
    env: "ENJIN_TRANSPORT",
    valueName: "NAME",
    description: "How this node talks to its peers.",
    allowed: '"zeromq" or "nats"',
  },
  listen: {
    flag: "listen",
    env: "ENJIN_LISTEN",
    valueName: "HOST:PORT",
    description: "Address the node listens on for peers.",
    allowed: "HOST:PORT with an IPv4 address, [IPv6] or host name, and a port 0-65535",
  },
  natsUrl: {
    flag: "nats-url",
    env: "ENJIN_NATS_URL",
    valueName: "URL",
    description: "The NATS server, when the transport is nats.",
    allowed: "a URL with scheme nats:, tls:, ws: or wss:",
  },
  controlSocket: {
    flag: "control-socket",
    env: "ENJIN_CONTROL_SOCKET",
    valueName: "PATH",
    description: "The control socket ringctl talks to (default <dataDir>/ringd.sock).",
    allowed: `a path of at most ${MAX_SOCKET_PATH_BYTES} bytes`,
  },
  logLevel: {
    flag: "log-level",
    env: "ENJIN_LOG_LEVEL",
    valueName: "LEVEL",
    description: "Least severe level logged.",
    allowed: LOG_LEVELS.join(", "),
  },
  logFile: {
    flag: "log-file",
    env: "ENJIN_LOG_FILE",
    valueName: "PATH",
    description: 'Write JSON logs to this file (mode 0600) instead of stderr; "-" means stderr.',
    allowed: 'a file path, or "-" for stderr',
  },
  name: {
    flag: "name",
    env: "ENJIN_NAME",
    valueName: "LABEL",
    description: "This node's name (default: the host name, made a label).",
    allowed: `a label: ${LABEL_WORDS}`,
  },
  compartment: {
    flag: "compartment",
    env: "ENJIN_COMPARTMENT",
    valueName: "A/B/C",
    description: "Where the node is, outermost first, e.g. eu/dc1/rack3.",
    allowed: `up to ${MAX_COMPARTMENT_DEPTH} labels separated by '/' (a JSON array in the file)`,
  },
  tiers: {
    flag: "tier",
    env: "ENJIN_TIERS",
    valueName: "TIER",
    description: "A role of the node, e.g. web; repeat the flag for several.",
    allowed: `up to ${MAX_TIERS} distinct labels (comma-separated in env, a JSON array in the file)`,
    multiple: true,
  },
};

const SCHEMAS: { readonly [F in ConfigField]: v.GenericSchema<unknown, DaemonConfig[F]> } = {
  dataDir: path,
  ring: v.picklist([0, 1, 2] as const),
  transport: v.picklist(TRANSPORTS),
  listen: v.pipe(v.string(), v.check(isHostPort)),
  natsUrl: v.pipe(v.string(), v.check(isNatsUrl)),
  controlSocket: v.pipe(v.string(), v.check(isAbsolute), v.maxBytes(MAX_SOCKET_PATH_BYTES)),
  logLevel: v.picklist(LOG_LEVELS),
  logFile: v.nullable(path),
  name: label,
  compartment: v.pipe(v.array(label), v.maxLength(MAX_COMPARTMENT_DEPTH)),
  tiers: v.pipe(
    v.array(label),
    v.maxLength(MAX_TIERS),
    v.check((xs) => new Set(xs).size === xs.length),
  ),
};

const FIELDS = Object.keys(CONFIG_FIELDS) as ConfigField[];
const PATH_FIELDS: ReadonlySet<ConfigField> = new Set(["dataDir", "controlSocket", "logFile"]);

function isHostPort(text: string): boolean {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[0-9A-Za-z.-]{1,253}):(\d{1,5})$/.exec(text);
  return m !== null && Number(m[2]) <= 65_535;
}

function isNatsUrl(text: string): boolean {
  try {
    return ["nats:", "tls:", "ws:", "wss:"].includes(new URL(text).protocol);
  } catch {
    return false;
  }
}

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
      return resolve(base, one);
    default:
      return one;
  }
}

/** Turn a file's JSON value into the field's type (before validation). */
function fromJson(field: ConfigField, value: unknown, base: string): unknown {
  if (field === "compartment" && typeof value === "string") return value === "" ? [] : value.split("/");
  if (field === "logFile" && value === "-") return null;
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
            : `one of the known fields: ${FIELDS.filter((f) => f !== "dataDir").join(", ")}`,
      });
    }
  }

  const config: Record<string, unknown> = {};
  const sources = {} as Record<ConfigField, ConfigSource>;
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
        return "nats://127.0.0.1:4222";
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
    }
  };
  for (const field of FIELDS) {
    const { value, source, origin } = take(field);
    const parsed = v.safeParse(SCHEMAS[field], value);
    if (parsed.success) {
      config[field] = parsed.output;
    } else {
      config[field] = value;
      issues.push({ field, source, origin, got: shown(value), allowed: CONFIG_FIELDS[field].allowed });
    }
    sources[field] = source;
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return { config: config as unknown as DaemonConfig, sources };
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
