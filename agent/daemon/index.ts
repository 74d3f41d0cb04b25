/**
 * agent/daemon/ — the plumbing ringd and ringctl stand on: the local control socket (a 0600 UNIX
 * socket speaking length-prefixed JSON, with progress for long calls), the daemon's configuration
 * (flags > env > file > defaults, validated), and its logger (pino, secrets redacted).
 */
export * from "./config.ts";
export * from "./config-fields.ts";
export * from "./config-file.ts";
export * from "./control-frame.ts";
export * from "./control-socket.ts";
export * from "./errors.ts";
export * from "./logger.ts";
