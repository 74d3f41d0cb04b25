/**
 * What a node does with an operator's command once MeshNode accepted it (signature, chain and role
 * checked, not expired): does the selector name this node, has it been seen before (the seen-set in
 * LevelDB survives restarts), and run it. `exec` runs argv directly (no shell) with a timeout and
 * output bounded by MAX_OUTPUT_BYTES; `child.*` actions go to the node's Supervisor
 * (child-commands.ts); every outcome is audited.
 */
import { execFile } from "node:child_process";
import {
  bytesEqual,
  type Certificate,
  type Command,
  MAX_OUTPUT_BYTES,
  type Result,
  type Selector,
} from "../../protocol/index.ts";
import type { CommandAction } from "../../rings/index.ts";
import { type ChildCommandContext, runChildCommand } from "./child-commands.ts";
import { CHILD_ACTIONS, type ChildAction } from "./child-protocol.ts";

/** How long an `exec` may run before it is killed. */
export const EXEC_TIMEOUT_MS = 60_000;
/** Actions a node carries out: those of rings' COMMAND_ACTIONS, which says who may send each. */
export const ACTIONS = ["exec", ...CHILD_ACTIONS] as const satisfies readonly CommandAction[];

const isChildAction = (action: string): action is ChildAction =>
  (CHILD_ACTIONS as readonly string[]).includes(action);

/** Whether `selector` names the node holding `cert` (every present field must match). */
export function selectorMatches(selector: Selector, cert: Certificate): boolean {
  if (selector.ring !== undefined && selector.ring !== cert.ring) return false;
  if (selector.nodes !== undefined && !selector.nodes.some((k) => bytesEqual(k, cert.subject))) return false;
  if (selector.compartment?.some((part, i) => cert.compartment[i] !== part)) return false;
  if (
    selector.tiers !== undefined &&
    selector.tiers.length > 0 &&
    !selector.tiers.some((t) => cert.tiers.includes(t))
  )
    return false;
  if (selector.labels !== undefined && !selector.labels.every((t) => cert.tiers.includes(t))) return false;
  return true;
}

/**
 * Run `command` here; never throws: a failure to start is a result with exit code 127. `children`
 * is what `child.*` actions act on (absent: this node refuses them).
 */
export async function runCommand(
  command: Command,
  commandId: Uint8Array,
  children?: ChildCommandContext,
): Promise<Result> {
  const fail = (exitCode: number, message: string): Result => ({
    commandId,
    exitCode,
    stdout: new Uint8Array(),
    stderr: new TextEncoder().encode(message),
    truncated: false,
  });
  if (isChildAction(command.action)) {
    if (children === undefined) return fail(64, `${command.action}: this node supervises no children`);
    return runChildCommand(command.action, command.args, commandId, children);
  }
  if (command.action !== "exec")
    return fail(64, `unknown action "${command.action}"; this node knows: ${ACTIONS.join(", ")}`);
  const [file, ...args] = command.args;
  if (file === undefined) return fail(64, "exec needs a program to run");
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      {
        timeout: EXEC_TIMEOUT_MS,
        maxBuffer: 4 * MAX_OUTPUT_BYTES,
        encoding: "buffer",
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
      },
      (err, stdout, stderr) => {
        const code =
          err === null ? 0 : typeof err.code === "number" ? err.code : err.code === "ENOENT" ? 127 : 1;
        const out = bound(stdout);
        const errOut =
          err !== null && stderr.length === 0 && err.code === "ENOENT"
            ? Buffer.from(`${file}: not found`)
            : stderr;
        const errBound = bound(errOut);
        resolve({
          commandId,
          exitCode: err?.killed === true ? 124 : code,
          stdout: out.bytes,
          stderr: errBound.bytes,
          truncated: out.cut || errBound.cut,
        });
      },
    );
  });
}

function bound(buf: Buffer): { bytes: Uint8Array; cut: boolean } {
  const half = MAX_OUTPUT_BYTES / 2;
  return buf.length > half
    ? { bytes: new Uint8Array(buf.subarray(0, half)), cut: true }
    : { bytes: new Uint8Array(buf), cut: false };
}
