/**
 * The target selector of every signed ringctl command (`exec`, `child ...`): one set of options
 * (`--node --ring --compartment --tier --label`), their help, and their parsing into a protocol
 * Selector. `--node` takes a node's hex key, its fingerprint (with or without "ed25519:"), its name
 * (ringctl knows only the local node's: names are not in certificates), or a part of its
 * fingerprint or a start of its hex key that only it has; anything but a full hex key is looked up
 * in what the local ringd knows, and an unknown or ambiguous one is a usage error saying so.
 */
import { keyFromHex, type Ring, type Selector } from "../protocol/index.ts";
import type { CommandContext, OptionSpec, OptionValues } from "./cli.ts";
import { connectDaemon } from "./daemon-client.ts";
import { UsageError } from "./errors.ts";

/** The shortest part of a fingerprint, or start of a hex key, that `--node` looks for. */
export const MIN_NODE_PART_CHARS = 6;
/** The fingerprint's scheme prefix, which `--node` may leave out. */
const FINGERPRINT_PREFIX = "ed25519:";
const HEX_KEY = /^[0-9a-f]{64}$/;

/** Options that choose the target nodes; every one given must match. */
export const SELECTOR_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  node: {
    type: "string",
    multiple: true,
    valueName: "NODE",
    description:
      "Only this node: its hex key, its fingerprint, the local node's name, or a part of " +
      `its fingerprint (as 'ringctl nodes' shows it) or a start of its hex key, of at least ${MIN_NODE_PART_CHARS} ` +
      "characters, that no other node the local ringd knows has.",
  },
  ring: { type: "string", valueName: "N", description: "Only nodes of ring N (0, 1 or 2)." },
  compartment: {
    type: "string",
    multiple: true,
    valueName: "PART",
    description: "Only nodes under this compartment path, outermost first.",
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

/** A node `--node` may name, as the local ringd knows it. */
export interface KnownNode {
  /** Its key, 64 lowercase hex characters. */
  readonly id: string;
  /** "ed25519:" and the base32 of its key's hash. */
  readonly fingerprint: string;
  /** Its name, where known (the local node's). */
  readonly name?: string;
}

const list = (x: unknown): string[] =>
  Array.isArray(x) ? (x as string[]) : typeof x === "string" ? [x] : [];

/** The `--node` values that are not full hex keys, and so must be looked up. */
export function nodeRefsToLookUp(values: OptionValues): string[] {
  return list(values.node).filter((ref) => !HEX_KEY.test(ref.toLowerCase()));
}

/**
 * The hex key `ref` names among `known`: a full hex key as it is; else the one node whose
 * fingerprint or name it is exactly; else the one node whose fingerprint holds it, or whose hex key
 * starts with it (at least MIN_NODE_PART_CHARS characters). A UsageError names an unknown or
 * ambiguous reference and what to give instead.
 */
export function resolveNodeRef(ref: string, known: readonly KnownNode[]): string {
  const text = ref.trim().toLowerCase();
  if (HEX_KEY.test(text)) return text;
  const body = text.startsWith(FINGERPRINT_PREFIX) ? text.slice(FINGERPRINT_PREFIX.length) : text;
  const ids = (match: (n: KnownNode) => boolean) => [...new Set(known.filter(match).map((n) => n.id))];
  let found = ids((n) => n.fingerprint === `${FINGERPRINT_PREFIX}${body}` || n.name === ref.trim());
  if (found.length === 0 && body.length >= MIN_NODE_PART_CHARS)
    found = ids(
      (n) => n.fingerprint.slice(FINGERPRINT_PREFIX.length).includes(body) || n.id.startsWith(body),
    );
  if (found.length === 1) return found[0]!;
  if (found.length === 0)
    throw new UsageError(
      `--node ${ref}: no node the local ringd knows has that hex key, fingerprint or name` +
        (body.length < MIN_NODE_PART_CHARS
          ? ` (a part of a fingerprint must have at least ${MIN_NODE_PART_CHARS} characters)`
          : ", nor a fingerprint holding it or a hex key starting with it") +
        "; 'ringctl nodes' lists the nodes it knows",
    );
  const shown = found.map((id) =>
    known.find((n) => n.id === id)!.fingerprint.slice(FINGERPRINT_PREFIX.length, 28),
  );
  throw new UsageError(
    `--node ${ref}: ${found.length} nodes match (${shown.join(", ")}); give more of the fingerprint, or the hex key`,
  );
}

/**
 * The selector the option values give, `--node` references resolved among `known`. `required`:
 * the command's name, when it refuses an empty selector (a command that changes or reads one
 * node's state must say where).
 */
export function parseSelector(
  values: OptionValues,
  known: readonly KnownNode[],
  required?: string,
): Selector {
  const s: { -readonly [K in keyof Selector]: Selector[K] } = {};
  if (values.ring !== undefined) {
    const ring = Number(values.ring);
    if (![0, 1, 2].includes(ring)) throw new UsageError(`--ring must be 0, 1 or 2, not "${values.ring}"`);
    s.ring = ring as Ring;
  }
  if (values.node !== undefined)
    s.nodes = list(values.node).map((ref) => keyFromHex(resolveNodeRef(ref, known)));
  if (values.compartment !== undefined) s.compartment = list(values.compartment);
  if (values.tier !== undefined) s.tiers = list(values.tier);
  if (values.label !== undefined) s.labels = list(values.label);
  if (required !== undefined && Object.keys(s).length === 0)
    throw new UsageError(
      `'${required}' needs a selector naming its target node(s): --node, --ring, --tier, --label or --compartment`,
    );
  return s;
}

/** The nodes the local ringd knows (`nodes`), the local one with its name (`status`). */
export async function knownNodes(ctx: CommandContext): Promise<KnownNode[]> {
  const client = await connectDaemon(ctx);
  try {
    const { nodes } = (await client.call("nodes", {})) as {
      nodes: { id: string; fingerprint: string; self: boolean }[];
    };
    const { name } = (await client.call("status", {})) as { name?: string };
    return nodes.map((n) => ({ id: n.id, fingerprint: n.fingerprint, ...(n.self && name ? { name } : {}) }));
  } finally {
    client.close();
  }
}

/**
 * The selector of the command `ctx` runs, asking the local ringd about nodes only when a `--node`
 * value is not a full hex key. `required`: refuse an empty selector (see parseSelector).
 */
export async function selectorFrom(ctx: CommandContext, required: boolean): Promise<Selector> {
  const known = nodeRefsToLookUp(ctx.values).length > 0 ? await knownNodes(ctx) : [];
  return parseSelector(
    ctx.values,
    known,
    required ? `${ctx.program.name} ${ctx.command.words.join(" ")}` : undefined,
  );
}
