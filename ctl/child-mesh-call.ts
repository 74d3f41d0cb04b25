/**
 * How `ringctl child ...` reaches the nodes its selector (selector-options.ts) names: one signed
 * command round trip — sign a `child.*` Command with the operator's key, hand it to the local
 * ringd to relay unchanged, wait for the nodes' signed Results, verify each here (signature,
 * command id, a node that was expected) and parse its JSON answer. A command the key's roles do
 * not allow is refused by the local ringd before it is relayed, and explained (command-refusal.ts).
 * The agent side is agent/node/child-commands.ts.
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
import type { CommandContext } from "./cli.ts";
import { explainingRefusal } from "./command-refusal.ts";
import { call, operatorKey, sealCommand } from "./ringctl-mesh.ts";

/** One node's verified answer. */
export interface NodeAnswer {
  readonly node: string;
  readonly fingerprint: string;
  /** 0 when the node did what was asked. */
  readonly exitCode: number;
  /** The node's JSON answer (on a refusal: `{error: {name, reason, message}}`). */
  readonly answer: Record<string, unknown>;
}

/** What a round trip gives: the verified answers and the expected nodes that did not answer. */
export interface MeshCallOutcome {
  /** The command's message id, hex. */
  readonly id: string;
  readonly answers: NodeAnswer[];
  readonly missing: { readonly id: string; readonly state: string }[];
}

/** Sign `action(args)` for `selector`, relay it through the local ringd, and verify the answers. */
export async function childMeshCall(
  ctx: CommandContext,
  selector: Selector,
  action: string,
  args: readonly string[],
  waitMs: number,
  progress = true,
): Promise<MeshCallOutcome> {
  const operator = await operatorKey(ctx);
  const envelope = sealCommand(operator, selector, action, args, waitMs);
  const id = envelopeIdKey(envelope)!;
  const r = await explainingRefusal(ctx, operator, action, () =>
    call(ctx, "command.submit", { envelope: Buffer.from(envelope).toString("base64"), waitMs }, (p) => {
      const at = p as { sent?: boolean; expected?: number };
      if (progress && at.sent === true) ctx.info(`sent to the mesh; waiting for ${at.expected} node(s) ...`);
    }),
  );
  const expected = new Set(r.expected as string[]);
  const answers: NodeAnswer[] = [];
  for (const b64 of r.results as string[]) {
    const env = openEnvelope(new Uint8Array(Buffer.from(b64, "base64"))); // verified here, by ringctl
    const result = decodePayload(MessageType.Result, env.payload);
    const node = keyHex(env.sender);
    if (messageIdKey(result.commandId) !== id || !expected.has(node)) {
      ctx.info(`ignored an answer from ${fingerprint(env.sender)}: not a node this command was sent to`);
      continue;
    }
    let answer: Record<string, unknown>;
    try {
      answer = JSON.parse(new TextDecoder().decode(result.stdout)) as Record<string, unknown>;
    } catch {
      const text = new TextDecoder().decode(result.stderr);
      answer = { error: { name: "UnreadableAnswer", reason: "unreadable-answer", message: text } };
    }
    answers.push({ node, fingerprint: fingerprint(env.sender), exitCode: result.exitCode, answer });
  }
  const idHex = Buffer.from(id, "latin1").toString("hex"); // the command's message id, printable
  return { id: idHex, answers, missing: r.missing as { id: string; state: string }[] };
}

/** A node as tables show it: the distinctive part of its fingerprint. */
export function shortNode(fp: string): string {
  return fp.slice(8, 28);
}

/** One line per refusal: "NODE  Name (reason): message". */
export function refusalLines(answers: readonly NodeAnswer[]): string[] {
  return answers
    .filter((a) => a.exitCode !== 0)
    .map((a) => {
      const e = (a.answer.error ?? {}) as { name?: string; reason?: string; message?: string };
      return `!! ${shortNode(a.fingerprint)}  ${e.name ?? "Error"} (${e.reason ?? "?"}): ${e.message ?? `exit ${a.exitCode}`}`;
    });
}

/** One line per missing node. */
export function missingLines(outcome: MeshCallOutcome): string[] {
  return outcome.missing.map(
    (m) =>
      `!! ${shortNode(fingerprint(keyFromHex(m.id)))}  no answer (${m.state === "alive" ? "unreachable" : m.state})`,
  );
}
