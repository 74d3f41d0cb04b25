/**
 * How `ringctl child ...` reaches nodes: the target selector options (as `exec` has them, with
 * `--node` also taking a fingerprint or a unique part of one), and one signed command round trip —
 * sign a `child.*` Command with the operator's key, hand it to the local ringd to relay unchanged,
 * wait for the nodes' signed Results, verify each here (signature, command id, a node that was
 * expected) and parse its JSON answer. A command the key's roles do not allow is refused by the local
 * ringd before it is relayed, and explained (command-refusal.ts). The agent side is agent/node/child-commands.ts.
 */
import { randomBytes } from "node:crypto";
import {
  decodePayload,
  encodePayload,
  envelopeIdKey,
  fingerprint,
  keyFromHex,
  keyHex,
  MessageType,
  messageIdKey,
  openEnvelope,
  type Ring,
  type Selector,
  sealEnvelope,
} from "../protocol/index.ts";
import type { CommandContext, OptionSpec } from "./cli.ts";
import { explainingRefusal } from "./command-refusal.ts";
import { UsageError } from "./errors.ts";
import { COMMAND_VALIDITY_SLACK_MS, call, operatorKey } from "./ringctl-mesh.ts";

/** Options that choose the target nodes; every given one must match. */
export const SELECTOR_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  node: {
    type: "string",
    multiple: true,
    valueName: "NODE",
    description:
      "Only this node: its hex key, its fingerprint, or a part of its fingerprint that only it has (as 'ringctl nodes' shows it).",
  },
  ring: { type: "string", valueName: "N", description: "Only nodes of ring N." },
  compartment: {
    type: "string",
    multiple: true,
    valueName: "PART",
    description: "Only nodes under this compartment path (outermost first).",
  },
  tier: {
    type: "string",
    multiple: true,
    valueName: "TIER",
    description: "Only nodes with at least one of these tiers.",
  },
  label: {
    type: "string",
    multiple: true,
    valueName: "TIER",
    description: "Only nodes with every one of these tiers.",
  },
};

const list = (x: unknown): string[] =>
  Array.isArray(x) ? (x as string[]) : typeof x === "string" ? [x] : [];

/** The hex keys `--node` values name, found in the local ringd's view of the mesh where not hex. */
async function resolveNodes(ctx: CommandContext, wanted: readonly string[]): Promise<string[]> {
  const needLookup = wanted.filter((w) => !/^[0-9a-f]{64}$/.test(w));
  const known =
    needLookup.length === 0
      ? []
      : ((await call(ctx, "nodes")).nodes as { id: string; fingerprint: string }[]).map((n) => ({
          id: n.id,
          fingerprint: n.fingerprint,
        }));
  return wanted.map((w) => {
    if (/^[0-9a-f]{64}$/.test(w)) return w;
    const matches = known.filter((n) => n.fingerprint === w || (w.length >= 6 && n.fingerprint.includes(w)));
    if (matches.length === 1) return matches[0]!.id;
    throw new UsageError(
      matches.length === 0
        ? `--node ${w}: no node the local ringd knows has that key or fingerprint; see 'ringctl nodes'`
        : `--node ${w}: ${matches.length} nodes match; give more of the fingerprint, or the hex key`,
    );
  });
}

/**
 * The selector the options give. `required`: refuse an empty one (a command that changes children
 * must name where), saying which options name targets.
 */
export async function selectorFrom(ctx: CommandContext, required: boolean): Promise<Selector> {
  const s: { -readonly [K in keyof Selector]: Selector[K] } = {};
  const v = ctx.values;
  if (v.ring !== undefined) {
    const ring = Number(v.ring);
    if (![0, 1, 2].includes(ring)) throw new UsageError(`--ring must be 0, 1 or 2, not "${v.ring}"`);
    s.ring = ring as Ring;
  }
  if (v.node !== undefined) s.nodes = (await resolveNodes(ctx, list(v.node))).map((k) => keyFromHex(k));
  if (v.compartment !== undefined) s.compartment = list(v.compartment);
  if (v.tier !== undefined) s.tiers = list(v.tier);
  if (v.label !== undefined) s.labels = list(v.label);
  if (required && Object.keys(s).length === 0)
    throw new UsageError(
      `'ringctl ${ctx.command.words.join(" ")}' changes or reads one node's children: name the node(s) with --node, --ring, --tier, --label or --compartment`,
    );
  return s;
}

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
  const now = Date.now();
  const envelope = sealEnvelope(
    operator,
    MessageType.Command,
    encodePayload(MessageType.Command, {
      selector,
      action,
      args: [...args],
      nonce: new Uint8Array(randomBytes(16)),
      issuedAtMs: now,
      expiresMs: now + waitMs + COMMAND_VALIDITY_SLACK_MS,
    }),
  );
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
