/**
 * How `ringctl child ...` reaches the nodes its selector (selector-options.ts) names: one signed
 * command round trip (mesh-call.ts), each verified answer parsed as the node's JSON answer. The
 * agent side is agent/node/child-commands.ts.
 */
import type { Selector } from "../protocol/index.ts";
import type { CommandContext } from "./cli.ts";
import { type MissingNode, meshCall, shortNode } from "./mesh-call.ts";

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
  readonly missing: MissingNode[];
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
  const { id, results, missing } = await meshCall(ctx, selector, action, args, waitMs, (at) => {
    if (progress && at.sent === true) ctx.info(`sent to the mesh; waiting for ${at.expected} node(s) ...`);
  });
  const answers = results.map(({ node, fingerprint, exitCode, stdout, stderr }): NodeAnswer => {
    let answer: Record<string, unknown>;
    try {
      answer = JSON.parse(new TextDecoder().decode(stdout)) as Record<string, unknown>;
    } catch {
      const text = new TextDecoder().decode(stderr);
      answer = { error: { name: "UnreadableAnswer", reason: "unreadable-answer", message: text } };
    }
    return { node, fingerprint, exitCode, answer };
  });
  return { id, answers, missing };
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
