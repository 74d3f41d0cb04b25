/**
 * Valibot schemas for every payload, applied after a payload is decoded (and before one is
 * encoded): ranges, closed lists, label patterns, id lengths, time order. The byte codec checks
 * sizes; these check meaning. A failure is a SchemaError.
 */
import * as v from "valibot";
import { SchemaError } from "./errors.ts";
import {
  MAC_BYTES,
  MAX_ADDR_BYTES,
  MAX_ARG_BYTES,
  MAX_BUNDLE_ENVELOPES,
  MAX_BUNDLE_MEMBERS,
  MAX_COMMAND_ARGS,
  MAX_COMPARTMENT_DEPTH,
  MAX_DIGEST_IDS,
  MAX_ENVELOPE_BYTES,
  MAX_OUTPUT_BYTES,
  MAX_PAYLOAD_BYTES,
  MAX_REASON_BYTES,
  MAX_ROLES,
  MAX_SEALED_BYTES,
  MAX_SELECTOR_NODES,
  MAX_SYNC_DIGEST_ENTRIES,
  MAX_SYNC_WANT_ENTRIES,
  MAX_TIERS,
  MAX_TOPIC_BYTES,
  MESSAGE_ID_BYTES,
  NONCE_BYTES,
  NOTICE_SET_HASH_BYTES,
  PUBLIC_KEY_BYTES,
  TOKEN_ID_BYTES,
} from "./limits.ts";
import { MessageType, type Role } from "./types.ts";

/** Labels (compartment parts, tiers, actions, names): lowercase, start alphanumeric, at most 63. */
export const LABEL_PATTERN = /^[a-z0-9][a-z0-9._-]{0,62}$/;

/** The closed list of roles, in wire order. Append only. */
export const ROLES: readonly Role[] = ["node", "issuer", "admin", "operator", "viewer"];

const bytesOf = (n: number) => v.pipe(v.instance(Uint8Array), v.length(n));
const bytesUpTo = (n: number) => v.pipe(v.instance(Uint8Array), v.maxLength(n));
const key = bytesOf(PUBLIC_KEY_BYTES);
const messageId = bytesOf(MESSAGE_ID_BYTES);
const label = v.pipe(v.string(), v.regex(LABEL_PATTERN));
const uint = v.pipe(v.number(), v.safeInteger(), v.minValue(0));
const u32 = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(0xffffffff));
const ring = v.picklist([0, 1, 2] as const);
/**
 * At most `n` UTF-8 bytes. A string of s.length UTF-16 units has at most 3 × s.length UTF-8 bytes, so
 * short strings pass without being encoded (valibot's maxBytes encodes every string it checks).
 */
const utf8Max = (n: number) =>
  v.pipe(
    v.string(),
    v.check((s) => s.length * 3 <= n || utf8.encode(s).length <= n, `at most ${n} UTF-8 bytes`),
  );
const utf8 = new TextEncoder();
const unique = <T>(items: readonly T[]) => new Set(items).size === items.length;
const labels = (max: number) => v.pipe(v.array(label), v.maxLength(max), v.check(unique, "duplicate label"));

const probe = v.object({ seq: u32, target: key });
const alive = v.object({ node: key, incarnation: uint, addr: utf8Max(MAX_ADDR_BYTES) });
const nodeIncarnation = v.object({ node: key, incarnation: uint });
const idList = v.object({ ids: v.pipe(v.array(messageId), v.maxLength(MAX_DIGEST_IDS)) });
/** Negative, 0 or positive as `a` sorts before, with or after `b`, byte by byte. */
function compareKeys(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length && i < b.length; i++)
    if (a[i] !== b[i]) return (a[i] as number) - (b[i] as number);
  return a.length - b.length;
}
/** Strictly ascending by key: sorted, no member twice (what makes a partial digest's range exact). */
const ascendingByNode = <E extends { node: Uint8Array }>(entries: E[]) =>
  entries.every((e, i) => i === 0 || compareKeys((entries[i - 1] as E).node, e.node) < 0);
const memberDigest = v.pipe(
  v.object({
    summary: v.boolean(),
    partial: v.boolean(),
    held: u32,
    hash: bytesOf(NOTICE_SET_HASH_BYTES),
    entries: v.pipe(
      v.array(nodeIncarnation),
      v.maxLength(MAX_SYNC_DIGEST_ENTRIES),
      v.check(ascendingByNode, "entries must be sorted by key, each key once"),
    ),
  }),
  v.check((d) => !d.summary || (d.entries.length === 0 && !d.partial), "a summary lists no entries"),
  v.check((d) => d.held >= d.entries.length, "held counts every entry listed"),
);
const memberWant = v.object({
  entries: v.pipe(v.array(nodeIncarnation), v.maxLength(MAX_SYNC_WANT_ENTRIES)),
});

const certificate = v.pipe(
  v.object({
    subject: key,
    issuer: key,
    ring,
    roles: v.pipe(
      v.array(v.picklist(ROLES)),
      v.minLength(1),
      v.maxLength(MAX_ROLES),
      v.check(unique, "duplicate role"),
    ),
    compartment: v.pipe(v.array(label), v.maxLength(MAX_COMPARTMENT_DEPTH)),
    tiers: labels(MAX_TIERS),
    serial: uint,
    notBeforeMs: uint,
    expiresMs: uint,
  }),
  v.check((c) => c.expiresMs > c.notBeforeMs, "expiresMs must be after notBeforeMs"),
);

const command = v.pipe(
  v.object({
    selector: v.object({
      ring: v.optional(ring),
      nodes: v.optional(v.pipe(v.array(key), v.maxLength(MAX_SELECTOR_NODES))),
      compartment: v.optional(v.pipe(v.array(label), v.maxLength(MAX_COMPARTMENT_DEPTH))),
      tiers: v.optional(labels(MAX_TIERS)),
      labels: v.optional(labels(MAX_TIERS)),
    }),
    action: label,
    args: v.pipe(v.array(utf8Max(MAX_ARG_BYTES)), v.maxLength(MAX_COMMAND_ARGS)),
    nonce: bytesOf(NONCE_BYTES),
    issuedAtMs: uint,
    expiresMs: uint,
  }),
  v.check((c) => c.expiresMs > c.issuedAtMs, "expiresMs must be after issuedAtMs"),
);

const envelopes = v.pipe(v.array(bytesUpTo(MAX_ENVELOPE_BYTES)), v.maxLength(MAX_BUNDLE_ENVELOPES));

/** The schema of each message type's payload. */
export const payloadSchemas = {
  [MessageType.Announce]: certificate,
  [MessageType.Revoke]: v.object({
    subject: key,
    issuer: key,
    epoch: uint,
    atMs: uint,
    reason: utf8Max(MAX_REASON_BYTES),
  }),
  [MessageType.Ping]: probe,
  [MessageType.PingReq]: probe,
  [MessageType.Ack]: probe,
  [MessageType.Nack]: probe,
  [MessageType.Suspect]: nodeIncarnation,
  [MessageType.Alive]: alive,
  [MessageType.Dead]: nodeIncarnation,
  [MessageType.Broadcast]: v.object({
    topic: v.pipe(utf8Max(MAX_TOPIC_BYTES), v.minLength(1)),
    data: bytesUpTo(MAX_PAYLOAD_BYTES),
    sentAtMs: v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(Number.MAX_SAFE_INTEGER)),
  }),
  [MessageType.Command]: command,
  [MessageType.Result]: v.object({
    commandId: messageId,
    exitCode: v.pipe(v.number(), v.integer(), v.minValue(-0x80000000), v.maxValue(0x7fffffff)),
    stdout: bytesUpTo(MAX_OUTPUT_BYTES),
    stderr: bytesUpTo(MAX_OUTPUT_BYTES),
    truncated: v.boolean(),
  }),
  [MessageType.JoinRequest]: v.object({
    tokenId: bytesOf(TOKEN_ID_BYTES),
    joinerKey: key,
    mac: bytesOf(MAC_BYTES),
    name: label,
  }),
  [MessageType.JoinResponse]: v.object({
    certificate: bytesUpTo(MAX_ENVELOPE_BYTES),
    chain: envelopes,
    revocations: envelopes,
    members: v.pipe(v.array(alive), v.maxLength(MAX_BUNDLE_MEMBERS)),
    peers: v.pipe(v.array(utf8Max(MAX_ADDR_BYTES)), v.maxLength(MAX_BUNDLE_MEMBERS)),
    sealedSecrets: bytesUpTo(MAX_SEALED_BYTES),
    certificates: envelopes,
  }),
  [MessageType.Digest]: idList,
  [MessageType.Want]: idList,
  [MessageType.MemberDigest]: memberDigest,
  [MessageType.MemberWant]: memberWant,
} as const;

/** Check `value` against the schema of `type`; throws SchemaError naming the first problems. */
export function validatePayload(type: MessageType, value: unknown): void {
  if (quickChecks[type](value)) return;
  const result = v.safeParse(payloadSchemas[type], value);
  if (!result.success) {
    const detail = result.issues
      .slice(0, 3)
      .map((i) => `${v.getDotPath(i) ?? "(root)"}: ${i.message}`)
      .join("; ");
    throw new SchemaError(`payload of type ${type}: ${detail}`);
  }
}

/** A valibot schema as run directly: its dataset carries `issues` only when the value failed. */
interface Runnable {
  readonly type: string;
  readonly entries?: Readonly<Record<string, Runnable>>;
  /** Set on a v.pipe, which also carries its first schema's type and entries. */
  readonly pipe?: readonly unknown[];
  "~run"(dataset: { value: unknown }, config: QuickConfig): { readonly issues?: unknown };
}
type QuickConfig = v.Config<v.BaseIssue<unknown>>;
/** Stop at the first issue: the quick check only answers yes or no; the details come from safeParse. */
const QUICK_CONFIG: QuickConfig = Object.freeze({ abortEarly: true, abortPipeEarly: true });

/**
 * The same verdict as `v.safeParse(schema, value).success`, for the payloads' hot path (every
 * received message passes here, between two signature checks). A top-level object schema is run
 * field by field: valibot's object run also copies every field into a fresh output object, through
 * key lookups that no inline cache can follow, which the decoder's freshly decoded value does not
 * need. Any other schema, a v.pipe over an object included, is run whole. A value that fails is run again through safeParse for the
 * error's details, so a failure costs more and a pass less; protocol/schema.test.ts checks the two
 * verdicts agree on random and corrupted payloads of every type.
 */
function quickCheck(schema: Runnable): (value: unknown) => boolean {
  // A pipe of an object (and checks across its fields) looks like the object: run it whole.
  const entries = schema.type === "object" && schema.pipe === undefined ? schema.entries : undefined;
  if (entries === undefined) return (value) => schema["~run"]({ value }, QUICK_CONFIG).issues === undefined;
  const fields = Object.entries(entries);
  return (value) => {
    if (typeof value !== "object" || value === null) return false;
    const record = value as Readonly<Record<string, unknown>>;
    for (const [key, field] of fields) {
      if (field["~run"]({ value: record[key] }, QUICK_CONFIG).issues !== undefined) return false;
    }
    return true;
  };
}

/** Whether `value` passes the quick check of `type`'s schema (exported for its test). */
export function passesQuickCheck(type: MessageType, value: unknown): boolean {
  return quickChecks[type](value);
}

const quickChecks = Object.fromEntries(
  Object.entries(payloadSchemas).map(([type, schema]) => [type, quickCheck(schema as unknown as Runnable)]),
) as unknown as Readonly<Record<MessageType, (value: unknown) => boolean>>;
