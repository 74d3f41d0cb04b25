/**
 * The daemon's configuration fields: their types, their names as flags and ENJIN_* variables,
 * their help text and what each allows (CONFIG_FIELDS), and their valibot schemas. config.ts merges
 * and validates with these; ctl/ turns them into options; docs/cli.md lists them.
 */
import { isAbsolute } from "node:path";
import * as v from "valibot";
import { LABEL_PATTERN, MAX_COMPARTMENT_DEPTH, MAX_TIERS } from "../../protocol/index.ts";

/** Longest control socket path: sun_path is 108 bytes on Linux, 104 on the BSDs and macOS (with NUL). */
export const MAX_SOCKET_PATH_BYTES = 103;
/** Longest file path accepted for dataDir and logFile. */
export const MAX_PATH_BYTES = 4096;

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
  /**
   * An existing NATS server or cluster (comma-separated URLs) to connect to instead of running one,
   * when transport is "nats"; null (not set): a ring-0 seed runs its own nats-server and every other
   * node uses the one its issuer named at join.
   */
  readonly natsUrl: string | null;
  /** PEM file of the CA(s) that signed natsUrl's server certificates; set exactly when natsUrl is. */
  readonly natsCaFile: string | null;
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
  /** The ports this node hands its supervised children (each gets one as PORT), both ends included. */
  readonly childPortRange: { readonly firstPort: number; readonly lastPort: number };
  /**
   * Where the node keeps its children's directories and logs. Never inside dataDir, which children
   * must not reach: a child's user needs to pass through every parent of its directory.
   */
  readonly childrenDir: string;
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
const port = v.pipe(v.number(), v.safeInteger(), v.minValue(1), v.maxValue(65_535));

/** Every field's names, help text and allowed values, in display order. */
export const CONFIG_FIELDS: Readonly<Record<ConfigField, ConfigFieldSpec>> = {
  dataDir: {
    flag: "data-dir",
    env: "ENJIN_DATA_DIR",
    valueName: "DIR",
    description: "Directory of the node's key, database, config file and control socket.",
    allowed:
      "a directory path (default /var/lib/enjin as root, else $XDG_STATE_HOME/enjin or ~/.local/state/enjin)",
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
    description:
      "An existing NATS server or cluster to use (transport nats) instead of a seed's own nats-server; " +
      "several URLs comma-separated. Unset by default.",
    allowed: "URLs with scheme nats: or tls: and a host, comma-separated; only with transport nats",
  },
  natsCaFile: {
    flag: "nats-ca-file",
    env: "ENJIN_NATS_CA_FILE",
    valueName: "FILE",
    description: "PEM file of the CA(s) that signed the natsUrl servers' TLS certificates.",
    allowed: "a file path; required with natsUrl, and only with it",
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
  childPortRange: {
    flag: "child-ports",
    env: "ENJIN_CHILD_PORTS",
    valueName: "FIRST-LAST",
    description:
      "Ports handed to supervised children, one each as PORT (default 20000-20999); nodes sharing a host need ranges of their own.",
    allowed: "FIRST-LAST, two ports 1-65535 with FIRST <= LAST (a string in the file)",
  },
  childrenDir: {
    flag: "children-dir",
    env: "ENJIN_CHILDREN_DIR",
    valueName: "DIR",
    description:
      "Where supervised children's directories and logs live (default <dataDir>-children, beside the data dir).",
    allowed: "a directory path outside dataDir (children must not reach the node's state)",
  },
};

/** The child port range used when none is configured. */
export const DEFAULT_CHILD_PORT_RANGE = { firstPort: 20_000, lastPort: 20_999 } as const;
/** Suffix of the default children directory, a sibling of the data dir: `<dataDir>-children`. */
export const CHILDREN_DIR_SUFFIX = "-children";

/** The valibot schema of each field, applied after text is turned into the field's type. */
export const CONFIG_SCHEMAS: { readonly [F in ConfigField]: v.GenericSchema<unknown, DaemonConfig[F]> } = {
  dataDir: path,
  ring: v.picklist([0, 1, 2] as const),
  transport: v.picklist(TRANSPORTS),
  listen: v.pipe(v.string(), v.check(isHostPort)),
  natsUrl: v.nullable(v.pipe(v.string(), v.maxBytes(MAX_PATH_BYTES), v.check(isNatsUrlList))),
  natsCaFile: v.nullable(path),
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
  childPortRange: v.pipe(
    v.strictObject({ firstPort: port, lastPort: port }),
    v.check((r) => r.firstPort <= r.lastPort),
  ),
  childrenDir: path,
};

/** The fields, in display order. */
export const CONFIG_FIELD_NAMES = Object.keys(CONFIG_FIELDS) as ConfigField[];
/** Fields holding file paths, resolved against a base directory. */
export const PATH_FIELDS: ReadonlySet<ConfigField> = new Set([
  "dataDir",
  "controlSocket",
  "logFile",
  "natsCaFile",
  "childrenDir",
]);

/**
 * "FIRST-LAST" as a port range object, for validation by the schema; text that is not two whole
 * numbers joined by "-" is returned as is, so the error shows what was given.
 */
export function parsePortRangeText(text: string): unknown {
  const m = /^\s*(\d{1,5})\s*-\s*(\d{1,5})\s*$/.exec(text);
  return m === null ? text : { firstPort: Number(m[1]), lastPort: Number(m[2]) };
}

function isHostPort(text: string): boolean {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[0-9A-Za-z.-]{1,253}):(\d{1,5})$/.exec(text);
  return m !== null && Number(m[2]) <= 65_535;
}

/** One or more comma-separated nats: or tls: URLs with a host (the node client speaks TCP only). */
function isNatsUrlList(text: string): boolean {
  const urls = text.split(",").map((u) => u.trim());
  return urls.every((u) => {
    try {
      const url = new URL(u);
      return ["nats:", "tls:"].includes(url.protocol) && url.hostname !== "";
    } catch {
      return false;
    }
  });
}
