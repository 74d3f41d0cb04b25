/**
 * Errors raised by agent/daemon/: the control socket, its client and the daemon's configuration.
 * One class per condition; `name` equals the class name and `reason` is a stable kebab-case string
 * used as a counter label. Callers (ringctl) branch on the class, never on the message text.
 */

/** Base of every error agent/daemon/ throws. */
export class DaemonError extends Error {
  /** Stable kebab-case reason, used as a counter label. */
  readonly reason: string = "daemon-error";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A control frame declares a length above MAX_CONTROL_FRAME_BYTES. */
export class FrameTooLargeError extends DaemonError {
  override readonly reason = "frame-too-large";
}

/** A control frame is not a well-formed request or response (bad JSON, wrong shape). */
export class MalformedMessageError extends DaemonError {
  override readonly reason = "malformed";
}

/** A request names a method the daemon has no handler for. */
export class UnknownMethodError extends DaemonError {
  override readonly reason = "unknown-method";
}

/** A connection has too many calls in flight, or reused the id of one still running. */
export class TooManyCallsError extends DaemonError {
  override readonly reason = "too-many-calls";
}

/** A client stopped reading while the daemon had more than MAX_CONTROL_WRITE_BUFFER_BYTES for it. */
export class SlowReaderError extends DaemonError {
  override readonly reason = "slow-reader";
}

/** serveControl found a live daemon answering on the socket path; it refuses to take it over. */
export class SocketInUseError extends DaemonError {
  override readonly reason = "socket-in-use";
}

/** serveControl found something that is not a socket at the path; it will not delete it. */
export class SocketPathOccupiedError extends DaemonError {
  override readonly reason = "socket-path-occupied";
}

/** The socket file could not be made mode 0600 (only its owner may talk to the daemon). */
export class SocketModeError extends DaemonError {
  override readonly reason = "socket-mode";
}

/** No daemon answers on the control socket: the file is missing, or stale (nobody listens). */
export class DaemonNotRunningError extends DaemonError {
  override readonly reason = "daemon-not-running";
}

/** The control socket exists but this user may not connect to it. */
export class ControlPermissionError extends DaemonError {
  override readonly reason = "permission-denied";
}

/** The daemon did not accept the connection, or answer a call, in time. */
export class ControlTimeoutError extends DaemonError {
  override readonly reason = "timeout";
}

/** The connection to the daemon closed (or failed) while calls were waiting for an answer. */
export class ControlConnectionClosedError extends DaemonError {
  override readonly reason = "connection-closed";
}

/**
 * The daemon answered a call with an error. `remoteName` is the class name the daemon reported
 * (e.g. "UnknownMethodError"); branch on it, not on the message.
 */
export class RemoteCallError extends DaemonError {
  override readonly reason = "remote-error";
  /** The `name` of the error on the daemon's side. */
  readonly remoteName: string;
  constructor(remoteName: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.remoteName = remoteName;
  }
}

/** Where a configuration value came from, in increasing precedence. */
export type ConfigSource = "default" | "file" | "env" | "flag";

/** One invalid configuration value: the field, where it came from, what it was and what is allowed. */
export interface ConfigIssue {
  /** The config field, e.g. "ring". */
  readonly field: string;
  /** Which layer supplied the bad value. */
  readonly source: ConfigSource;
  /** The exact place: "--ring", "ENJIN_RING", the file's path, or "default". */
  readonly origin: string;
  /** What was given, as text (truncated). */
  readonly got: string;
  /** What is allowed, in words. */
  readonly allowed: string;
}

/** The configuration is invalid; `issues` lists every bad value, each naming its field and source. */
export class ConfigError extends DaemonError {
  override readonly reason = "config-invalid";
  /** Every problem found, in field order. */
  readonly issues: readonly ConfigIssue[];
  constructor(issues: readonly ConfigIssue[], options?: { cause?: unknown }) {
    super(issues.map(formatConfigIssue).join("\n"), options);
    this.issues = issues;
  }
}

/** The config file exists but cannot be read or is not a JSON object. */
export class ConfigFileError extends DaemonError {
  override readonly reason = "config-file";
}

/** One line naming the field, its source, what was given and what is allowed. */
export function formatConfigIssue(issue: ConfigIssue): string {
  const where = issue.source === "default" ? "the default" : `${issue.source} ${issue.origin}`;
  return `config field "${issue.field}" from ${where}: got ${issue.got}; allowed: ${issue.allowed}`;
}
