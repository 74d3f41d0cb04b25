/**
 * The join exchange over a ZeroMQ CURVE channel. The issuer listens on a join endpoint whose CURVE
 * key is its own (so the joiner, which knows the issuer's key from the token's endpoint and checks
 * it against the token's fingerprint *before sending anything*, cannot be talked to by anyone
 * else), and admits any client: a joiner has no certificate yet. One frame each way:
 *
 *   joiner → issuer   JoinRequest envelope, signed by the joiner's fresh key (which it names)
 *   issuer → joiner   JoinResponse envelope signed by the issuer, or a Result envelope whose
 *                     exitCode ≠ 0 and stderr say why the join was refused
 *
 * The issuer's side (`JoinService`) checks the token through bootstrap's TokenIssuer, which
 * persists the redemption before anything is answered; then it certifies the joiner, persists and
 * gossips the certificate, and answers with the trust bundle.
 */

import {
  assertTokenIssuer,
  decodeJoinToken,
  type JoinToken,
  makeJoinRequest,
  RedeemError,
  type TokenIssuer,
} from "../../bootstrap/index.ts";
import {
  bytesEqual,
  decodeFrame,
  decodePayload,
  type Envelope,
  encodeFrame,
  encodePayload,
  type Identity,
  type JoinRequest,
  type JoinResponse,
  MessageType,
  openEnvelope,
  sealEnvelope,
  sha256,
  verifyChain,
} from "../../protocol/index.ts";
import type { Counters } from "../../rings/index.ts";
import type { Transport } from "../transport/transport.ts";
import { zeromq } from "../transport/zeromq.ts";
import { parseZeromqAddress } from "../transport/zeromq-address.ts";

/**
 * How long a joiner's first attempt waits for an answer from one endpoint; each further attempt
 * waits one more of these (5, 10, 15 s: 30 s an endpoint), and an answer to any attempt counts. A
 * starved issuer (a NATS seed admitting a hundred joiners at load ~90) took over 10 s to answer.
 */
export const JOIN_ATTEMPT_TIMEOUT_MS = 5_000;
/** Attempts per endpoint. The issuer answers a repeat of a request it is still working on once. */
export const JOIN_ATTEMPTS_PER_ENDPOINT = 3;

/** The join was refused by the issuer; `message` is the issuer's reason. */
export class JoinRefusedError extends Error {
  override readonly name = "JoinRefusedError";
}

/** No endpoint of the token answered. */
export class JoinUnreachableError extends Error {
  override readonly name = "JoinUnreachableError";
}

/** The issuer answered with something that does not make this node a member. */
export class BadJoinResponseError extends Error {
  override readonly name = "BadJoinResponseError";
}

/** What the issuer's daemon provides to answer joins. */
export interface JoinAuthority {
  readonly identity: Identity;
  readonly tokens: TokenIssuer;
  readonly counters: Counters;
  /** Certify the joiner as the redeemed scope allows; returns the JoinResponse to send. */
  admit(
    joinerKey: Uint8Array,
    name: string,
    scope: { ring: 0 | 1 | 2; tiers: readonly string[]; compartment: readonly string[] },
    nowMs: number,
  ): Promise<JoinResponse>;
  now(): number;
}

/**
 * Answer JoinRequests arriving on `transport` (a join endpoint that admits any CURVE client).
 *
 * A joiner that hears nothing sends the same request again. While the first is still being worked
 * on (a slow disk, a NATS reload), a byte-identical request is not worked on twice: it waits for the
 * first one's answer and gets it too (`join:coalesced`). Only the same signed envelope coalesces,
 * so this answers nobody that the normal path would not answer (it treats the repeat as a retry).
 */
export function serveJoins(transport: Transport, authority: JoinAuthority): void {
  /** Requests being answered, by the SHA-256 of their envelope (hex): who else asked meanwhile. */
  const inFlight = new Map<string, Set<string>>();
  transport.onFrame((from, frame) => {
    void answer(transport, authority, inFlight, from, frame).catch(() =>
      authority.counters.inc("join:internal-error"),
    );
  });
}

async function answer(
  transport: Transport,
  authority: JoinAuthority,
  inFlight: Map<string, Set<string>>,
  from: string,
  frame: Uint8Array,
): Promise<void> {
  const { counters } = authority;
  let request: Envelope;
  let key: string;
  try {
    const items = decodeFrame(frame);
    if (items.length !== 1)
      throw new BadJoinResponseError(`a join frame carries one item, not ${items.length}`);
    request = openEnvelope(items[0]!.envelope);
    key = Buffer.from(sha256(items[0]!.envelope)).toString("hex");
    if (request.type !== MessageType.JoinRequest) throw new BadJoinResponseError("not a join request");
  } catch {
    counters.inc("join:rejected-malformed");
    return;
  }
  const payload = decodeSafely(request);
  if (payload === undefined || !bytesEqual(payload.joinerKey, request.sender)) {
    counters.inc("join:rejected-malformed");
    return;
  }
  const waiting = inFlight.get(key);
  if (waiting !== undefined) {
    waiting.add(from);
    counters.inc("join:coalesced");
    return;
  }
  const askers = new Set([from]);
  inFlight.set(key, askers);
  try {
    const reply = encodeFrame([{ hops: 0, envelope: await replyTo(authority, request, payload, from) }]);
    for (const to of askers) transport.send(to, reply);
  } finally {
    inFlight.delete(key);
  }
}

/** The JoinResponse for a well-formed request, or a Result saying why it was refused. */
async function replyTo(
  authority: JoinAuthority,
  request: Envelope,
  payload: JoinRequest,
  from: string,
): Promise<Uint8Array> {
  const { counters } = authority;
  const now = authority.now();
  let reply: Uint8Array;
  try {
    const redeemed = await authority.tokens.redeem(payload, now, from);
    const response = await authority.admit(payload.joinerKey, payload.name, redeemed.scope, now);
    reply = sealEnvelope(
      authority.identity,
      MessageType.JoinResponse,
      encodePayload(MessageType.JoinResponse, response),
    );
    counters.inc(redeemed.repeat ? "join:answered-repeat" : "join:admitted");
  } catch (err) {
    const reason =
      err instanceof RedeemError
        ? err.message
        : `the issuer could not certify you: ${(err as Error).message}`;
    counters.inc(err instanceof RedeemError ? `join:refused-${(err as RedeemError).reason}` : "join:failed");
    reply = sealEnvelope(
      authority.identity,
      MessageType.Result,
      encodePayload(MessageType.Result, {
        commandId: request.signature.subarray(0, 16),
        exitCode: 1,
        stdout: new Uint8Array(),
        stderr: new TextEncoder().encode(reason.slice(0, 1_000)),
        truncated: false,
      }),
    );
  }
  return reply;
}

function decodeSafely(env: Envelope) {
  try {
    return decodePayload(MessageType.JoinRequest, env.payload);
  } catch {
    return undefined;
  }
}

/** A successful join: what the joiner must persist. */
export interface Joined {
  readonly rootKey: Uint8Array;
  readonly response: JoinResponse;
  readonly issuerKey: Uint8Array;
}

/** Options of `joinWithToken`. */
export interface JoinOptions {
  readonly token: string | JoinToken;
  readonly identity: Identity;
  readonly name: string;
  /** Where this node listens while it waits for the answer (tcp://host:port; port 0 picks one). */
  readonly listen: string;
  readonly advertiseHost?: string;
  readonly nowMs: () => number;
  /** Called before each attempt (for progress lines). */
  readonly onAttempt?: (endpoint: string, attempt: number) => void;
  readonly attemptTimeoutMs?: number;
}

/**
 * Join the mesh a token names: for each endpoint, check that its key is the one the token's
 * fingerprint names (else say nothing to it), send the proof, and wait for the certificate and the
 * trust bundle. The chain is verified back to the root the issuer's chain names.
 */
export async function joinWithToken(opts: JoinOptions): Promise<Joined> {
  const token = typeof opts.token === "string" ? decodeJoinToken(opts.token) : opts.token;
  const transport = await zeromq({
    identity: opts.identity,
    authorize: (key) => bytesEqual(sha256(key), token.issuerDigest),
    ...(opts.advertiseHost === undefined ? {} : { advertiseHost: opts.advertiseHost }),
  })({ listen: opts.listen });
  const answers: { from: string; frame: Uint8Array }[] = [];
  let wake: (() => void) | undefined;
  transport.onFrame((from, frame) => {
    answers.push({ from, frame });
    wake?.();
  });
  const request = sealEnvelope(
    opts.identity,
    MessageType.JoinRequest,
    encodePayload(MessageType.JoinRequest, makeJoinRequest(token, opts.identity.publicKey, opts.name)),
  );
  const frame = encodeFrame([{ hops: 0, envelope: request }]);
  const problems: string[] = [];
  try {
    for (const endpoint of token.endpoints) {
      const address = parseZeromqAddress(endpoint);
      if (address === undefined) {
        problems.push(`${endpoint}: not a ZeroMQ endpoint`);
        continue;
      }
      assertTokenIssuer(token, address.publicKey); // before a single byte goes out
      for (let attempt = 1; attempt <= JOIN_ATTEMPTS_PER_ENDPOINT; attempt++) {
        opts.onAttempt?.(endpoint, attempt);
        transport.send(endpoint, frame);
        const deadline = Date.now() + attempt * (opts.attemptTimeoutMs ?? JOIN_ATTEMPT_TIMEOUT_MS);
        while (Date.now() < deadline) {
          const got = answers.shift();
          if (got !== undefined) {
            const result = readAnswer(got.frame, address.publicKey, opts.identity.publicKey, opts.nowMs());
            if (result !== undefined) return result;
            continue;
          }
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, Math.max(1, deadline - Date.now()));
            wake = () => {
              clearTimeout(timer);
              resolve();
            };
          });
          wake = undefined;
        }
      }
      problems.push(`${endpoint}: no answer`);
    }
  } finally {
    await transport.close();
  }
  throw new JoinUnreachableError(
    `no issuer named by the token answered (${problems.join("; ")}); check that the issuing ringd is running and reachable, ` +
      "or ask for a new token",
  );
}

/** The join result in `frame`, or JoinRefusedError / BadJoinResponseError; undefined to ignore it. */
function readAnswer(
  frame: Uint8Array,
  issuerKey: Uint8Array,
  ownKey: Uint8Array,
  nowMs: number,
): Joined | undefined {
  let env: Envelope;
  try {
    const items = decodeFrame(frame);
    env = openEnvelope(items[0]!.envelope);
  } catch {
    return undefined;
  }
  if (!bytesEqual(env.sender, issuerKey)) return undefined;
  if (env.type === MessageType.Result) {
    const refusal = decodePayload(MessageType.Result, env.payload);
    throw new JoinRefusedError(`the issuer refused the join: ${new TextDecoder().decode(refusal.stderr)}`);
  }
  if (env.type !== MessageType.JoinResponse) return undefined;
  const response = decodePayload(MessageType.JoinResponse, env.payload);
  const chain = [...response.chain, response.certificate];
  const first = openEnvelope(chain[0]!);
  // The root is the issuer of the root-most certificate; the token vouched for the issuer.
  const rootKey = decodePayload(MessageType.Announce, first.payload).issuer;
  let leaf: ReturnType<typeof verifyChain>;
  try {
    leaf = verifyChain(rootKey, chain, nowMs);
  } catch (err) {
    throw new BadJoinResponseError(
      `the certificate the issuer sent does not verify: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  if (!bytesEqual(leaf.subject, ownKey))
    throw new BadJoinResponseError("the certificate the issuer sent is for another key");
  return { rootKey: Uint8Array.from(rootKey), response, issuerKey };
}
