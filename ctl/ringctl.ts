/**
 * ringctl, the operator's tool: its command list. Commands are `<noun> <verb>`; each lives in its
 * own file and is added here. For now: `version` and the built-in `help`.
 */
import type { ProgramSpec } from "./cli.ts";
import { childCommands } from "./ringctl-child.ts";
import { execCommand } from "./ringctl-exec.ts";
import { meshCommands } from "./ringctl-mesh.ts";
import { nodeCommands } from "./ringctl-node.ts";
import { trustCommands } from "./ringctl-trust.ts";
import { versionCommand } from "./version.ts";

/** The ringctl program. */
export const ringctl: ProgramSpec = {
  name: "ringctl",
  summary: "command an enjin mesh through the local ringd",
  description:
    "ringctl talks to the ringd on this machine over its control socket (mode 0600, so run it as " +
    "the user that runs ringd) and, through it, to the nodes of the mesh. Commands are " +
    "'ringctl <noun> <verb>'. Results go to stdout, as text or, with --json, as one JSON object; " +
    "progress and errors go to stderr. The exit status says what happened (see EXIT STATUS in " +
    "each command's help, and docs/cli.md).",
  commands: [
    ...meshCommands,
    execCommand,
    ...trustCommands,
    ...childCommands,
    ...nodeCommands,
    versionCommand("ringctl"),
  ],
};
