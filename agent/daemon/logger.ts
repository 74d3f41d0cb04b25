/**
 * The daemon's logger: pino, one JSON object per line, to stderr or to a file (mode 0600), at the
 * configured level. Secrets are redacted by key name at any depth (REDACTED_KEY_PATTERN), in the
 * logged object and in a child logger's bindings, before anything is serialized: log
 * `{ secretKey }` and the line says `"secretKey":"[redacted]"`. Message strings are not scanned:
 * never interpolate a secret into one.
 */
import { createRequire } from "node:module";
import type { Bindings, ChildLoggerOptions, DestinationStream, Logger } from "pino";
import type { DaemonConfig } from "./config-fields.ts";

// pino is CommonJS: `require` skips node's scan of its source for named exports (protocol/sodium.ts).
const { pino } = createRequire(import.meta.url)("pino") as typeof import("pino");

/** What replaces a redacted value. */
export const REDACTED = "[redacted]";
/** Nesting depth logged; deeper values become "[truncated]". */
export const MAX_LOG_DEPTH = 8;
/** Array items logged; the rest are summarised as one "[N more]" item. */
export const MAX_LOG_ARRAY_ITEMS = 64;
/** Byte arrays up to this length are logged as hex; longer ones as "<N bytes>". */
export const MAX_LOGGED_HEX_BYTES = 64;
/** Mode of a log file the daemon creates. */
export const LOG_FILE_MODE = 0o600;

/**
 * A key whose value is never logged, matched case-insensitively after removing "_" and "-":
 * anything holding secret, private, password, passphrase, seed, credential, authorization, cookie,
 * or exactly token, key, mac, jwt, nkey, sk.
 */
export const REDACTED_KEY_PATTERN =
  /secret|private|passw|passphrase|seed|credential|authorization|cookie|^(token|key|mac|jwt|nkey|sk)$/;

/** Whether a value under `key` must be redacted. */
export function isSecretKey(key: string): boolean {
  return REDACTED_KEY_PATTERN.test(key.toLowerCase().replace(/[-_]/g, ""));
}

/**
 * A copy of `value` safe to log: secret-named keys replaced by REDACTED at any depth, errors as
 * plain objects (with their cause), byte arrays as hex or a length, cycles and excess depth cut.
 */
export function redactForLog(value: unknown, depth = 0, seen: WeakSet<object> = new WeakSet()): unknown {
  if (typeof value === "bigint") return value.toString();
  if (typeof value !== "object" || value === null) return value;
  if (value instanceof Uint8Array) {
    return value.length <= MAX_LOGGED_HEX_BYTES
      ? Buffer.from(value).toString("hex")
      : `<${value.length} bytes>`;
  }
  if (value instanceof Date) return value.toISOString();
  if (depth >= MAX_LOG_DEPTH) return "[truncated]";
  if (seen.has(value)) return "[circular]";
  seen.add(value);
  try {
    if (Array.isArray(value)) {
      const items = value.slice(0, MAX_LOG_ARRAY_ITEMS).map((item) => redactForLog(item, depth + 1, seen));
      if (value.length > MAX_LOG_ARRAY_ITEMS) items.push(`[${value.length - MAX_LOG_ARRAY_ITEMS} more]`);
      return items;
    }
    // An error keeps its prototype, so pino's err serializer still names its class.
    const out: Record<string, unknown> =
      value instanceof Error ? Object.create(Object.getPrototypeOf(value) as object) : {};
    if (value instanceof Error) {
      out.type = value.name;
      out.message = value.message;
      out.stack = value.stack;
      if (value.cause !== undefined) out.cause = redactForLog(value.cause, depth + 1, seen);
    }
    for (const [key, item] of Object.entries(value)) {
      out[key] = isSecretKey(key) ? REDACTED : redactForLog(item, depth + 1, seen);
    }
    return out;
  } finally {
    seen.delete(value);
  }
}

/** Options of createLogger. */
export interface CreateLoggerOptions {
  /** Write here instead of stderr or the configured file (tests). */
  readonly destination?: DestinationStream;
}

/**
 * A pino logger for the daemon: level from `config.logLevel`, JSON lines to `config.logFile` (created
 * with mode 0600, directories made) or, when it is null, to stderr. Secrets are redacted by key.
 */
export function createLogger(
  config: Pick<DaemonConfig, "logLevel" | "logFile">,
  options: CreateLoggerOptions = {},
): Logger {
  const destination =
    options.destination ??
    (config.logFile === null
      ? pino.destination({ fd: 2, sync: true })
      : pino.destination({ dest: config.logFile, mkdir: true, sync: false, mode: LOG_FILE_MODE }));
  const logger = pino(
    {
      level: config.logLevel,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: {
        level: (label) => ({ level: label }),
        bindings: (bindings) => redactForLog(bindings) as Record<string, unknown>,
        log: (object) => redactForLog(object) as Record<string, unknown>,
      },
    },
    destination,
  );
  // pino applies formatters.bindings to the root's bindings only; children and setBindings skip it.
  // Every child inherits these two properties from the root, so this covers the whole tree.
  type ChildFn = (this: Logger, bindings: Bindings, options?: ChildLoggerOptions) => Logger;
  const child = logger.child as unknown as ChildFn;
  const setBindings = logger.setBindings;
  logger.child = function redactedChild(this: Logger, bindings: Bindings, options?: ChildLoggerOptions) {
    return child.call(this, redactForLog(bindings) as Bindings, options);
  } as unknown as Logger["child"];
  logger.setBindings = function redactedSetBindings(this: Logger, bindings: Bindings) {
    setBindings.call(this, redactForLog(bindings) as Bindings);
  };
  return logger;
}
