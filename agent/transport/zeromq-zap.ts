/**
 * The ZAP decision (ZeroMQ RFC 27) for the ZeroMQ transport's server: a pure function from one
 * request, as the ZAP handler's Router receives it, to the reply and the counter to bump.
 *
 *     request: [routing id, "", "1.0", request id, domain, address, identity, mechanism, ...credentials]
 *     reply:   [routing id, "", "1.0", request id, status code, status text, user id, metadata]
 *
 * Only CURVE with one 32-byte credential (the client's CURVE public key) can pass; the key is
 * refused if revoked (revocation is kept by CURVE key, since P and -P share one), else converted
 * back to its ed25519 candidates (see zeromq-keys.ts) and admitted if `authorize` accepts one of
 * them. The user id of an admitted client is that ed25519 key in hex.
 */
import { keyHex } from "../../protocol/index.ts";
import { ed25519CandidatesOf } from "./zeromq-keys.ts";

/** The inproc endpoint at which libzmq looks for a context's ZAP handler. */
export const ZAP_ENDPOINT = "inproc://zeromq.zap.01";
/** The ZAP protocol version this handler speaks. */
export const ZAP_VERSION = "1.0";

/** What the ZAP decision needs to know. */
export interface ZapPolicy {
  /** Whether this ed25519 key may connect. */
  readonly authorize: (ed25519PublicKey: Uint8Array) => boolean;
  /** CURVE keys (hex) of revoked members; refused with their own reason. */
  readonly revokedCurve: ReadonlySet<string>;
  /** The ZAP domain the server sockets use; other domains are refused. */
  readonly domain: string;
}

/** The outcome of one ZAP request. */
export interface ZapAnswer {
  /** The reply to send, or undefined when the request is too malformed to answer. */
  readonly reply: Array<Buffer | string> | undefined;
  /** The counter to bump: `admitted-peer` or `refused-peer-<reason>`. */
  readonly counter: string;
  /** The admitted client's CURVE key, hex, when admitted. */
  readonly admittedCurveHex?: string;
}

/** Decide one ZAP request. Never throws. */
export function answerZap(request: Buffer[], policy: ZapPolicy): ZapAnswer {
  const [routing, delimiter, version, requestId, domain, , , mechanism, ...credentials] = request;
  if (routing === undefined || delimiter === undefined || requestId === undefined) {
    return { reply: undefined, counter: "refused-peer-bad-request" };
  }
  const reply = (status: string, text: string, userId = ""): Array<Buffer | string> => [
    routing,
    delimiter,
    ZAP_VERSION,
    requestId,
    status,
    text,
    userId,
    "",
  ];
  const refuse = (reason: string, status = "400"): ZapAnswer => ({
    reply: reply(status, reason),
    counter: `refused-peer-${reason}`,
  });
  if (version?.toString() !== ZAP_VERSION) return refuse("bad-request", "500");
  if (domain?.toString() !== policy.domain) return refuse("bad-request");
  const credential = credentials[0];
  if (mechanism?.toString() !== "CURVE" || credentials.length !== 1 || credential === undefined) {
    return refuse("not-curve");
  }
  const curveHex = keyHex(credential);
  if (policy.revokedCurve.has(curveHex)) return refuse("revoked");
  const candidates = ed25519CandidatesOf(credential);
  if (candidates.length === 0) return refuse("bad-key");
  for (const candidate of candidates) {
    let ok = false;
    try {
      ok = policy.authorize(candidate) === true;
    } catch {
      return refuse("authorize-error");
    }
    if (ok)
      return {
        reply: reply("200", "OK", keyHex(candidate)),
        counter: "admitted-peer",
        admittedCurveHex: curveHex,
      };
  }
  return refuse("unauthorized");
}
