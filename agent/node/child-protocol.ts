/**
 * What `ringctl child ...` and a node say to each other about children, shared by both sides and
 * pure (no I/O, no clock). Commands are ordinary signed Commands (protocol/types.ts): the action is
 * one of CHILD_ACTIONS and the args are at most two strings, the second a JSON object; the node
 * checks them with the valibot schemas here before the Supervisor checks the rest. The node answers
 * with an ordinary signed Result whose stdout is one JSON object: the action's answer, or
 * `{"error": {"name", "reason", "message"}}` with a non-zero exit code.
 *
 * A give-up is a signed event: the node broadcasts it on CHILD_EVENT_TOPIC, and also signs the
 * event's own bytes with its node key (domain CHILD_EVENT_DOMAIN), so that what a node stores and
 * hands to `ringctl child events` can be verified by ringctl itself, end to end, like a Result.
 *
 *   broadcast data = JSON {"event": EVENT_JSON_TEXT, "signature": BASE64(64 bytes)}
 *   signature      = ed25519(node key, CHILD_EVENT_DOMAIN || utf8(EVENT_JSON_TEXT))
 *   EVENT_JSON     = {"version": 1, "node": HEX, "child", "strategy", "reason", "restarts", "atMs"}
 */
import * as v from "valibot";
import {
  type Identity,
  keyFromHex,
  MAX_ARG_BYTES,
  MAX_REASON_BYTES,
  sign,
  verifyDetached,
} from "../../protocol/index.ts";
import type { CommandAction } from "../../rings/index.ts";

/** Every child action a node carries out (each in rings' COMMAND_ACTIONS, which says who may send it). */
export const CHILD_ACTIONS = [
  "child.create",
  "child.list",
  "child.start",
  "child.stop",
  "child.restart",
  "child.remove",
  "child.logs",
] as const satisfies readonly CommandAction[];
/** One of CHILD_ACTIONS. */
export type ChildAction = (typeof CHILD_ACTIONS)[number];

/** Exit codes of a child command's Result. */
export const ChildExitCode = {
  Ok: 0,
  /** The node refused: a bad spec, an unknown child, a taken name ... (error.name says which). */
  Refused: 1,
  /** The command's arguments are malformed (a ringctl of another version?). */
  BadArguments: 64,
  /** The operator's role does not allow this action. */
  NotPermitted: 77,
} as const;

/** Broadcast topic of give-up events. */
export const CHILD_EVENT_TOPIC = "enjin.child-event";
/** Domain tag of a child event's own signature. */
export const CHILD_EVENT_DOMAIN: Uint8Array = new TextEncoder().encode("enjin/child-event/v1\0");
/** Layout version of a child event. */
export const CHILD_EVENT_VERSION = 1;
/** Most log bytes one `child.logs` answer carries (the Result's stdout holds at most 24 KiB of JSON). */
export const MAX_LOG_ANSWER_BYTES = 12 * 1024;
/** Most lines a tail may ask for. */
export const MAX_TAIL_LINES = 10_000;

const name = v.pipe(
  v.string(),
  v.regex(/^[a-z0-9][a-z0-9-]{0,31}$/, "a child name: [a-z0-9][a-z0-9-]{0,31}"),
);
const count = v.pipe(v.number(), v.safeInteger(), v.minValue(0));
const json = <T>(schema: v.GenericSchema<unknown, T>) =>
  v.pipe(v.string(), v.maxBytes(MAX_ARG_BYTES), v.parseJson(), schema);

/** Where a reader stopped in a child's log (agent/supervise LogCursor). */
export const logCursorSchema = v.strictObject({
  offsetBytes: count,
  rotatedId: v.pipe(v.string(), v.maxLength(128)),
  shrunkReads: count,
});

/** `child.create` args: [request JSON]; spec, policy and checks are checked in full by the Supervisor. */
export const createArgsSchema = v.tuple([
  json(
    v.strictObject({
      strategy: v.pipe(v.string(), v.maxLength(64)),
      spec: v.record(v.string(), v.unknown()),
      restartPolicy: v.optional(v.record(v.string(), v.unknown())),
      health: v.optional(v.pipe(v.array(v.record(v.string(), v.unknown())), v.maxLength(8))),
      start: v.optional(v.boolean()),
    }),
  ),
]);
/** `child.list` args: none. */
export const listArgsSchema = v.tuple([]);
/** `child.start|stop|restart|remove` args: [name]. */
export const nameArgsSchema = v.tuple([name]);
/**
 * `child.logs` args: [name, what]: `{lines}` tails; `{lines, follow: true}` tails and also answers the
 * cursor at the end, to read on from; `{cursor}` reads on from a cursor (null: answers the end's).
 */
export const logsArgsSchema = v.tuple([
  name,
  json(
    v.union([
      v.strictObject({
        lines: v.pipe(count, v.minValue(1), v.maxValue(MAX_TAIL_LINES)),
        follow: v.optional(v.literal(true)),
      }),
      v.strictObject({ cursor: v.nullable(logCursorSchema) }),
    ]),
  ),
]);

/** The answer to `child.logs`: text, and with a cursor request, the cursor to read on from. */
export interface ChildLogsAnswer {
  readonly text: string;
  readonly cursor?: v.InferOutput<typeof logCursorSchema>;
}

/** A give-up, as the node that gave up tells it. */
export interface ChildEvent {
  readonly version: number;
  /** Hex key of the node that gave up (the signer). */
  readonly node: string;
  readonly child: string;
  readonly strategy: string;
  readonly reason: string;
  readonly restarts: number;
  readonly atMs: number;
}

const eventSchema = v.strictObject({
  version: v.literal(CHILD_EVENT_VERSION),
  node: v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/)),
  child: name,
  strategy: v.pipe(v.string(), v.maxLength(64)),
  reason: v.pipe(v.string(), v.maxBytes(MAX_REASON_BYTES)),
  restarts: count,
  atMs: count,
});
const signedEventSchema = v.strictObject({
  event: v.pipe(v.string(), v.maxBytes(2_048)),
  signature: v.pipe(v.string(), v.base64(), v.length(88)),
});

/** A child event whose data was malformed or whose signature does not verify. */
export class BadChildEventError extends Error {
  override readonly name = "BadChildEventError";
}

/** Cut `text` to at most `maxBytes` of UTF-8, on a character boundary, marking the cut with "...". */
export function boundText(text: string, maxBytes: number): string {
  const bytes = new TextEncoder().encode(text);
  if (bytes.length <= maxBytes) return text;
  const cut = new TextDecoder().decode(bytes.subarray(0, maxBytes - 3)).replace(/\uFFFD$/, "");
  return `${cut}...`;
}

/** The broadcast data of a give-up, signed with the node's key (see the file comment). */
export function encodeChildEvent(
  identity: Identity,
  event: Omit<ChildEvent, "version" | "node">,
): Uint8Array {
  const full: ChildEvent = {
    version: CHILD_EVENT_VERSION,
    node: Buffer.from(identity.publicKey).toString("hex"),
    child: event.child,
    strategy: event.strategy,
    reason: boundText(event.reason, MAX_REASON_BYTES),
    restarts: event.restarts,
    atMs: event.atMs,
  };
  const text = JSON.stringify(full);
  const signature = sign(identity.secretKey, withDomain(text));
  return new TextEncoder().encode(
    JSON.stringify({ event: text, signature: Buffer.from(signature).toString("base64") }),
  );
}

/**
 * Decode and verify a give-up's broadcast data: the schema, then the signature against the key the
 * event names, which must be `sender` (the broadcast's signer). BadChildEventError otherwise.
 */
export function verifyChildEvent(data: Uint8Array, sender: string): ChildEvent {
  let outer: v.InferOutput<typeof signedEventSchema>;
  let event: ChildEvent;
  try {
    outer = v.parse(signedEventSchema, JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(data)));
    event = v.parse(eventSchema, JSON.parse(outer.event));
  } catch (err) {
    throw new BadChildEventError(`malformed child event: ${(err as Error).message}`, { cause: err });
  }
  if (event.node !== sender)
    throw new BadChildEventError(`child event names node ${event.node} but was sent by ${sender}`);
  const signature = new Uint8Array(Buffer.from(outer.signature, "base64"));
  if (!verifyDetached(signature, withDomain(outer.event), keyFromHex(event.node)))
    throw new BadChildEventError(`child event of ${event.child} from ${event.node}: bad signature`);
  return event;
}

function withDomain(text: string): Uint8Array {
  const body = new TextEncoder().encode(text);
  const out = new Uint8Array(CHILD_EVENT_DOMAIN.length + body.length);
  out.set(CHILD_EVENT_DOMAIN);
  out.set(body, CHILD_EVENT_DOMAIN.length);
  return out;
}
