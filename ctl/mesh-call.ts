/**
 * One signed command round trip, as `ringctl exec` and `ringctl child ...` make it: sign
 * `action(args)` for the nodes a selector names with the operator's key, hand it to the local ringd
 * to relay unchanged, wait for the nodes' signed Results, and keep only the answers verified here
 * (the signature, the command's id, and a sender the command was sent to). A command the key's
 * roles do not allow is refused by the local ringd before it is relayed, and explained
 * (command-refusal.ts). The agent side is agent/node/commands.ts and child-commands.ts.
 */
import {
  decodePayload,
  envelopeIdKey,
  fingerprint,
  keyFromHex,
  keyHex,
  MessageType,
  messageIdKey,
  openEnvelope,
  type Selector,
} from "../protocol/index.ts";
import type { CommandContext, OptionSpec } from "./cli.ts";
import { explainingRefusal } from "./command-refusal.ts";
import { DAEMON_OPTIONS } from "./daemon-client.ts";
import { call, KEY_OPTION, operatorKey, sealCommand } from "./ringctl-mesh.ts";
import { SELECTOR_OPTIONS } from "./selector-options.ts";

/** The options of every command that makes a mesh call: the daemon, the key, the selector, --timeout. */
export const MESH_CALL_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  ...DAEMON_OPTIONS,
  ...KEY_OPTION,
  ...SELECTOR_OPTIONS,
  timeout: {
    type: "string",
    valueName: "DURATION",
    description: "How long to wait for answers (default 30s).",
  },
};

/** One node's answer, its signature verified by ringctl. */
export interface SignedResult {
  /** The node's key, hex. */
  readonly node: string;
  readonly fingerprint: string;
  /** 0 when the node did what was asked. */
  readonly exitCode: number;
  readonly stdout: Uint8Array;
  readonly stderr: Uint8Array;
  readonly truncated: boolean;
}

/** A node that was sent the command and did not answer, and the state the local ringd holds it in. */
export interface MissingNode {
  readonly id: string;
  readonly state: string;
}

/** What a round trip gives: the verified answers and the expected nodes that did not answer. */
export interface MeshCallResults {
  /** The command's message id, hex. */
  readonly id: string;
  readonly results: SignedResult[];
  readonly missing: MissingNode[];
}

/** Progress the local ringd reports while it waits: sent, then answers and retries as they come. */
export interface MeshCallProgress {
  readonly sent?: boolean;
  readonly expected?: number;
  readonly answered?: number;
  readonly retried?: number;
}

/** Sign `action(args)` for `selector`, relay it through the local ringd, and verify the answers. */
export async function meshCall(
  ctx: CommandContext,
  selector: Selector,
  action: string,
  args: readonly string[],
  waitMs: number,
  onProgress?: (progress: MeshCallProgress) => void,
): Promise<MeshCallResults> {
  const operator = await operatorKey(ctx);
  const envelope = sealCommand(operator, selector, action, args, waitMs);
  const id = envelopeIdKey(envelope)!;
  const r = await explainingRefusal(ctx, operator, action, () =>
    call(ctx, "command.submit", { envelope: Buffer.from(envelope).toString("base64"), waitMs }, (p) =>
      onProgress?.(p as MeshCallProgress),
    ),
  );
  const expected = new Set(r.expected as string[]);
  const results: SignedResult[] = [];
  for (const b64 of r.results as string[]) {
    const env = openEnvelope(new Uint8Array(Buffer.from(b64, "base64"))); // verified here, by ringctl
    const result = decodePayload(MessageType.Result, env.payload);
    const node = keyHex(env.sender);
    if (messageIdKey(result.commandId) !== id || !expected.has(node)) {
      ctx.info(`ignored an answer from ${fingerprint(env.sender)}: not a node this command was sent to`);
      continue;
    }
    const { exitCode, stdout, stderr, truncated } = result;
    results.push({ node, fingerprint: fingerprint(env.sender), exitCode, stdout, stderr, truncated });
  }
  const idHex = Buffer.from(id, "latin1").toString("hex"); // the command's message id, printable
  return { id: idHex, results, missing: r.missing as MissingNode[] };
}

/** A node as tables show it: the distinctive part of its fingerprint. */
export function shortNode(fp: string): string {
  return fp.slice(8, 28);
}

/** One line per missing node. */
export function missingLines(outcome: { readonly missing: readonly MissingNode[] }): string[] {
  return outcome.missing.map(
    (m) =>
      `!! ${shortNode(fingerprint(keyFromHex(m.id)))}  no answer (${m.state === "alive" ? "unreachable" : m.state})`,
  );
}
