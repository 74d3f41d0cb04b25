/**
 * ctl/ — the command line: the framework both binaries share (`<noun> <verb>` dispatch, man-page
 * help, --json, named exit codes), and the ringd and ringctl programs built on it. The executables
 * are ctl/bin/ringd.ts and ctl/bin/ringctl.ts. The rules are in docs/cli.md.
 */
export * from "./cli.ts";
export * from "./config-options.ts";
export * from "./daemon-client.ts";
export * from "./errors.ts";
export * from "./exit-codes.ts";
export * from "./help.ts";
export * from "./ringctl.ts";
export * from "./ringd.ts";
export * from "./version.ts";
