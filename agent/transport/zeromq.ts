/**
 * The ZeroMQ transport: CURVE-encrypted TCP between certified members, with no server to run.
 *
 * Each endpoint owns one ZeroMQ Context (so many endpoints live in one process) holding:
 * - a ZAP handler, a Router bound at `inproc://zeromq.zap.01` (RFC 27), which admits a client only
 *   if its CURVE key is not revoked and converts to an ed25519 key that `authorize` accepts;
 * - the server, a CURVE Router bound on TCP, which receives every inbound frame;
 * - one CURVE Dealer per destination, connected to `tcp://HOST:PORT` and checking the server's key
 *   from the address, with a bounded queue in front of it so `send` never blocks.
 *
 * Wire (one ZeroMQ message per frame, as the server's Router sees it):
 *
 *     part 0  routing id   the sender's own transport address (the Dealer's routingId) → `from`
 *     part 1  1 byte       ZEROMQ_WIRE_VERSION
 *     part 2  0..max bytes the frame
 *
 * Every inbound part is bounded twice: libzmq's maxMessageSize drops a connection that sends more
 * than the frame limit plus CURVE's overhead, and our own check counts anything over the exact
 * limit as `malformed-too-large`. Messages of the wrong shape are counted (`malformed-*`), never
 * thrown on.
 *
 * `from` is *asserted* by an admitted member, not proven: the receiver drops it unless the key in it
 * has the CURVE key of a connection ZAP admitted and not revoked since, but one member could still
 * name another admitted member. Origin is proven above the transport, by the envelope signatures.
 *
 * Revocation (the Revocable ability) refuses the key from then on, closes our Dealers to it, and
 * replaces the server socket so every connected peer must pass ZAP again; the revoked one cannot.
 * A client that a server's ZAP refuses is not retried by libzmq, so its Dealer is dropped and the
 * next send to that address starts afresh (counted as `refused-by-peer`).
 */
import { createRequire } from "node:module";
import type * as Zmq from "zeromq";
import { type Identity, keyHex, MAX_FRAME_BYTES } from "../../protocol/index.ts";
import { Counters } from "../../rings/index.ts";
import type { SendRefusal, Transport, TransportServices } from "./transport.ts";
import {
  formatZeromqAddress,
  InvalidListenAddressError,
  MAX_ZEROMQ_ADDRESS_BYTES,
  parseListen,
  parseZeromqAddress,
  portOfEndpoint,
  ZeromqBindError,
} from "./zeromq-address.ts";
import { curveKeyPairOf, curvePublicKeyOf, z85Encode } from "./zeromq-keys.ts";
import { Outbound } from "./zeromq-outbound.ts";
import { answerZap, ZAP_ENDPOINT } from "./zeromq-zap.ts";

// zeromq is CommonJS: `require` skips node's scan of its source for named exports (protocol/sodium.ts).
const zmq = createRequire(import.meta.url)("zeromq") as typeof Zmq;

/**
 * Version of the transport's own framing (the parts around the frame).
 * - v1: [version byte, frame], sender's address as the routing id.
 */
export const ZEROMQ_WIRE_VERSION = 1;
/** Where a node listens when the services name no address: loopback, a free port. */
export const DEFAULT_ZEROMQ_LISTEN = "tcp://127.0.0.1:0";
/** Default bound of each destination's queue, in frames. */
export const DEFAULT_MAX_QUEUED_FRAMES = 4_096;
/** Default bound of each destination's queue, in bytes. */
export const DEFAULT_MAX_QUEUED_BYTES = 16 * 1024 * 1024;
/**
 * Default bound of open outbound connections (Dealers); opening one more closes the least recently
 * used. A peer costs ~95 KiB of native memory here (our Dealer with its monitor, and our server's end
 * of the peer's Dealer with its ZAP pipe), so this bounds the transport at ~25 MiB and evicts
 * departed members' Dealers first. Not lower: SWIM probes every member in turn and gossip picks
 * peers at random, so a cap below the mesh size reopens a connection for ~(1 - cap/N) of the ~3
 * sends a second of an idle node, and with ringd on 2 cores that cost more than it saved (60 nodes
 * at 32: 30.6 MiB private instead of 26.5, 98 reconnections a minute, CPU ×1.75; 101 nodes at 64:
 * members judged dead, load 200).
 */
export const DEFAULT_MAX_PEERS = 256;
/** Default libzmq queue (high-water mark) of each socket, in messages. */
export const DEFAULT_HIGH_WATER_MARK = 1_000;
/** Default wait between reconnect attempts of a Dealer. */
export const DEFAULT_ZEROMQ_RECONNECT_INTERVAL_MS = 100;
/**
 * Default longest wait between a Dealer's reconnect attempts: each failed attempt doubles the wait up
 * to this. A Dealer to a member that died keeps trying until it is evicted; at a fixed 100 ms, 100
 * such Dealers cost 72 ms of CPU a second, at most 1 s apart 6 ms.
 */
export const DEFAULT_ZEROMQ_RECONNECT_MAX_INTERVAL_MS = 1_000;

/** Options of the ZeroMQ transport. */
export interface ZeromqOptions {
  /** This node's ed25519 key pair; its CURVE key pair is derived from it. */
  readonly identity: Identity;
  /**
   * Whether the holder of this ed25519 public key may talk to us (is a certified, unrevoked
   * member). Asked before the first send to an address, and by the ZAP handler at each handshake.
   * ZAP learns only the client's CURVE key, which two ed25519 keys share (P and -P, see
   * zeromq-keys.ts); it asks about both, so answer from a membership lookup, never "yes to all
   * but X". Must be quick and must not throw (a throw counts as a refusal).
   */
  readonly authorize: (ed25519PublicKey: Uint8Array) => boolean;
  /** Largest frame carried either way (default MAX_FRAME_BYTES, 256 KiB). */
  readonly maxFrameBytes?: number;
  /** Bound of each destination's queue in frames; beyond it frames are dropped and counted. */
  readonly maxQueuedFrames?: number;
  /** Bound of each destination's queue in bytes; beyond it frames are dropped and counted. */
  readonly maxQueuedBytes?: number;
  /** Most outbound connections open at once (default DEFAULT_MAX_PEERS); the least recently used goes. */
  readonly maxPeers?: number;
  /** libzmq high-water mark of every socket, in messages (default DEFAULT_HIGH_WATER_MARK). */
  readonly highWaterMark?: number;
  /** Host put in `address` instead of the listen host (required when listening on `*`). */
  readonly advertiseHost?: string;
  /** Wait between a Dealer's reconnect attempts (default DEFAULT_ZEROMQ_RECONNECT_INTERVAL_MS). */
  readonly reconnectIntervalMs?: number;
  /**
   * Longest wait between reconnect attempts, which double from reconnectIntervalMs (default
   * DEFAULT_ZEROMQ_RECONNECT_MAX_INTERVAL_MS); at least reconnectIntervalMs.
   */
  readonly reconnectMaxIntervalMs?: number;
}

/**
 * The optional ability to revoke a peer at once: its key is refused from then on, and its open
 * connections (both ways) are closed, so it must handshake again and is turned away.
 */
export interface Revocable {
  /** Refuse `ed25519PublicKey` from now on and close its connections. */
  revoke(ed25519PublicKey: Uint8Array): Promise<void>;
}

/** True when `transport` has the Revocable ability. */
export function isRevocable(transport: Transport): transport is Transport & Revocable {
  return typeof (transport as Partial<Revocable>).revoke === "function";
}

/**
 * A ZeroMQ endpoint: a Transport that can revoke peers and report its counters. Counter names are
 * stable kebab-case:
 * - `sent`, `delivered`, `admitted-peer` (a handshake ZAP let in), `rebind` (the server socket
 *   was replaced to close a revoked peer's connections);
 * - `dropped-*`: queue-full, send-error, evicted, no-handler, unadmitted-sender;
 * - `evicted-peer`: an outbound connection closed to stay under maxPeers;
 * - `refused-send-*`: a SendRefusal, or unauthorized-peer (sent as "unknown-address");
 * - `refused-peer-*` (ZAP): unauthorized, revoked, bad-key, not-curve, bad-request, authorize-error;
 * - `refused-handshake-*`: protocol, other (ZMTP-level failures, e.g. a non-CURVE client);
 * - `refused-by-peer`: a server's ZAP turned this node away;
 * - `malformed-*`: parts, version, too-large, sender;
 * - errors that should not happen: authorize-error, receive-error, zap-receive-error,
 *   zap-send-error, rebind-error.
 */
export interface ZeromqTransport extends Transport, Revocable {
  /** A snapshot of the counters, sorted by name. */
  counters(): Record<string, number>;
}

/** An option is out of range. */
export class InvalidZeromqOptionError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Rebinding the server after a revocation failed; the endpoint no longer receives. */
export class ZeromqRebindError extends Error {
  /** The endpoint that could not be bound again. */
  readonly endpoint: string;
  constructor(endpoint: string, options?: { cause?: unknown }) {
    super(`zeromq transport could not rebind ${endpoint} after a revocation`, options);
    this.name = new.target.name;
    this.endpoint = endpoint;
  }
}

/**
 * The ZeroMQ transport factory: `zeromq(opts)` returns a TransportFactory (one whose endpoints are
 * also ZeromqTransport) that opens an endpoint listening on `services.listen` (`tcp://HOST:PORT`,
 * port 0 or `*` for a free one; default DEFAULT_ZEROMQ_LISTEN). Throws InvalidZeromqOptionError
 * or KeyConversionError at once on bad options; opening rejects with InvalidListenAddressError or
 * ZeromqBindError.
 */
export function zeromq(opts: ZeromqOptions): (services: TransportServices) => Promise<ZeromqTransport> {
  const limits = {
    maxFrameBytes: opts.maxFrameBytes ?? MAX_FRAME_BYTES,
    maxQueuedFrames: opts.maxQueuedFrames ?? DEFAULT_MAX_QUEUED_FRAMES,
    maxQueuedBytes: opts.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES,
    maxPeers: opts.maxPeers ?? DEFAULT_MAX_PEERS,
    highWaterMark: opts.highWaterMark ?? DEFAULT_HIGH_WATER_MARK,
    reconnectIntervalMs: opts.reconnectIntervalMs ?? DEFAULT_ZEROMQ_RECONNECT_INTERVAL_MS,
    reconnectMaxIntervalMs: opts.reconnectMaxIntervalMs ?? DEFAULT_ZEROMQ_RECONNECT_MAX_INTERVAL_MS,
  };
  for (const [name, value] of Object.entries(limits)) {
    if (!(Number.isInteger(value) && value >= (name === "maxFrameBytes" ? 0 : 1))) {
      throw new InvalidZeromqOptionError(`${name} must be a positive integer, got ${value}`);
    }
  }
  if (limits.reconnectMaxIntervalMs < limits.reconnectIntervalMs) {
    throw new InvalidZeromqOptionError(
      `reconnectMaxIntervalMs must be at least reconnectIntervalMs (${limits.reconnectIntervalMs}), got ${limits.reconnectMaxIntervalMs}`,
    );
  }
  const curve = curveKeyPairOf(opts.identity);
  return (services) => open(opts, limits, curve, services);
}

type Limits = Required<
  Pick<
    ZeromqOptions,
    | "maxFrameBytes"
    | "maxQueuedFrames"
    | "maxQueuedBytes"
    | "maxPeers"
    | "highWaterMark"
    | "reconnectIntervalMs"
    | "reconnectMaxIntervalMs"
  >
>;

const VERSION_PART = Buffer.from([ZEROMQ_WIRE_VERSION]);
const ZAP_DOMAIN = "enjin";
/**
 * libzmq applies maxMessageSize to the encrypted CURVE MESSAGE command, which wraps a part in
 * 33 bytes ("\x07MESSAGE", an 8-byte nonce, a 16-byte MAC and a flags byte); give it some room
 * and keep the exact limit in our own check.
 */
const CURVE_MESSAGE_OVERHEAD_BYTES = 64;
/** Attempts to bind the replacement server socket after a revocation, and the wait between them. */
const REBIND_ATTEMPTS = 100;
const REBIND_RETRY_MS = 10;
const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
/** Bound of the ed25519 → CURVE key cache (cleared when full). */
const MAX_CACHED_KEYS = 4_096;

async function open(
  opts: ZeromqOptions,
  limits: Limits,
  curve: { publicKey: Uint8Array; secretKey: Uint8Array },
  services: TransportServices,
): Promise<ZeromqTransport> {
  const ownKeyHex = keyHex(opts.identity.publicKey);
  const listen = services.listen ?? DEFAULT_ZEROMQ_LISTEN;
  const request = parseListen(listen, ownKeyHex);
  const advertiseHost = opts.advertiseHost ?? request.host;
  if (advertiseHost === "*") throw new InvalidListenAddressError(listen);
  const curvePublicKey = z85Encode(curve.publicKey);
  const curveSecretKey = z85Encode(curve.secretKey);

  const counters = new Counters();
  // Kept by CURVE key (hex): that is what a connection proves, and P and -P share one.
  const admittedCurve = new Set<string>(); // keys ZAP let in, minus revoked ones
  const revokedCurve = new Set<string>();
  const curveHexCache = new Map<string, string | null>(); // ed25519 hex → CURVE hex (null: none)
  const curveHexOf = (ed25519Hex: string, publicKey: Uint8Array): string | null => {
    let curveHex = curveHexCache.get(ed25519Hex);
    if (curveHex === undefined) {
      try {
        curveHex = keyHex(curvePublicKeyOf(publicKey));
      } catch {
        curveHex = null;
      }
      if (curveHexCache.size >= MAX_CACHED_KEYS) curveHexCache.clear();
      curveHexCache.set(ed25519Hex, curveHex);
    }
    return curveHex;
  };
  const authorize = (publicKey: Uint8Array, curveHex: string): boolean => {
    if (revokedCurve.has(curveHex)) return false;
    try {
      return opts.authorize(publicKey) === true;
    } catch {
      counters.inc("authorize-error");
      return false;
    }
  };

  const context = new zmq.Context({ blocky: false });
  const zap = new zmq.Router({ context, linger: 0 });
  const newServer = (): Zmq.Router =>
    new zmq.Router({
      context,
      linger: 0,
      curveServer: true,
      curvePublicKey,
      curveSecretKey,
      zapDomain: ZAP_DOMAIN,
      handover: true, // a peer that reconnects (same routing id) takes over its old connection
      maxMessageSize: Math.max(limits.maxFrameBytes, MAX_ZEROMQ_ADDRESS_BYTES) + CURVE_MESSAGE_OVERHEAD_BYTES,
      receiveHighWaterMark: limits.highWaterMark,
    });
  let server = newServer();
  const bindEndpoint = `tcp://${request.host}:${request.port === 0 ? "*" : request.port}`;
  let boundEndpoint: string;
  let address: string;
  try {
    await zap.bind(ZAP_ENDPOINT); // before the server: CURVE without a ZAP handler admits anyone
    await server.bind(bindEndpoint);
    boundEndpoint = server.lastEndpoint ?? bindEndpoint;
    const port = portOfEndpoint(boundEndpoint);
    if (port === undefined) throw new InvalidListenAddressError(boundEndpoint);
    address = formatZeromqAddress(advertiseHost, port, opts.identity.publicKey);
    if (Buffer.byteLength(address) > MAX_ZEROMQ_ADDRESS_BYTES) throw new InvalidListenAddressError(address);
  } catch (err) {
    zap.close();
    server.close();
    throw new ZeromqBindError(bindEndpoint, { cause: err });
  }

  let closed = false;
  let closing: Promise<void> | undefined;
  let handler: ((from: string, frame: Uint8Array) => void) | undefined;
  let revocations: Promise<void> = Promise.resolve();

  const watch = (socket: Zmq.Router): void => {
    socket.events.on("handshake:error:protocol", () => counters.inc("refused-handshake-protocol"));
    socket.events.on("handshake:error:other", () => counters.inc("refused-handshake-other"));
  };
  watch(server);

  const zapLoop = (async () => {
    while (!closed) {
      let request: Buffer[];
      try {
        request = await zap.receive();
      } catch {
        if (closed) return;
        counters.inc("zap-receive-error");
        await yieldToEventLoop(); // never spin on a failing socket
        continue;
      }
      const answer = answerZap(request, { authorize: opts.authorize, revokedCurve, domain: ZAP_DOMAIN });
      counters.inc(answer.counter);
      if (answer.admittedCurveHex !== undefined) admittedCurve.add(answer.admittedCurveHex);
      if (answer.reply === undefined) continue;
      try {
        await zap.send(answer.reply);
      } catch {
        if (closed) return;
        counters.inc("zap-send-error");
      }
    }
  })();

  /** The sender and frame of an inbound message, or the counter naming why it is dropped. */
  const accept = (parts: Buffer[]): { from: string; frame: Buffer } | string => {
    if (parts.length !== 3) return "malformed-parts";
    const [routing, version, frame] = parts as [Buffer, Buffer, Buffer];
    if (version.length !== 1 || version[0] !== ZEROMQ_WIRE_VERSION) return "malformed-version";
    if (frame.length > limits.maxFrameBytes) return "malformed-too-large";
    const from = routing.toString("latin1");
    const sender = parseZeromqAddress(from);
    if (sender === undefined) return "malformed-sender";
    const senderCurveHex = curveHexOf(sender.publicKeyHex, sender.publicKey);
    if (senderCurveHex === null || !admittedCurve.has(senderCurveHex)) return "dropped-unadmitted-sender";
    if (handler === undefined) return "dropped-no-handler";
    return { from, frame };
  };

  const onInbound = (parts: Buffer[]): void => {
    const accepted = accept(parts);
    if (typeof accepted === "string") {
      counters.inc(accepted);
      return;
    }
    counters.inc("delivered");
    const { from, frame } = accepted;
    handler?.(from, new Uint8Array(frame.buffer, frame.byteOffset, frame.byteLength));
  };

  /** Receive from one server socket until it or the endpoint closes. */
  const receiveFrom = async (socket: Zmq.Router): Promise<void> => {
    while (!closed && !socket.closed) {
      let parts: Buffer[];
      try {
        parts = await socket.receive();
      } catch {
        if (closed || socket.closed) return;
        counters.inc("receive-error");
        await yieldToEventLoop(); // never spin on a failing socket
        continue;
      }
      if (!closed) onInbound(parts);
    }
  };
  let receiving: Promise<unknown> = receiveFrom(server);

  const outbound = new Outbound({
    context,
    routingId: address,
    curvePublicKey,
    curveSecretKey,
    maxQueuedFrames: limits.maxQueuedFrames,
    maxQueuedBytes: limits.maxQueuedBytes,
    maxPeers: limits.maxPeers,
    highWaterMark: limits.highWaterMark,
    reconnectIntervalMs: limits.reconnectIntervalMs,
    reconnectMaxIntervalMs: limits.reconnectMaxIntervalMs,
    header: VERSION_PART,
    counters,
  });

  /** Open the Dealer for `to` unless it is open; or the reason it cannot be. */
  const openPeer = (to: string): "unknown-address" | "unauthorized-peer" | undefined => {
    if (outbound.has(to)) return undefined;
    const target = parseZeromqAddress(to);
    if (target === undefined) return "unknown-address";
    const curveHex = curveHexOf(target.publicKeyHex, target.publicKey);
    if (curveHex === null) return "unknown-address";
    if (!authorize(target.publicKey, curveHex)) return "unauthorized-peer";
    const curve = Buffer.from(curveHex, "hex");
    return outbound.open(to, { endpoint: target.endpoint, curvePublicKey: curve })
      ? undefined
      : "unknown-address";
  };

  const refuse = (reason: SendRefusal, counter: string = reason): SendRefusal => {
    counters.inc(`refused-send-${counter}`);
    return reason;
  };

  /**
   * Replace the server socket, so every peer must handshake (through ZAP) again. Unbinding the old
   * socket would be lighter, but with peers connected it trips a libzmq 4.3.5 assertion
   * (pipe.cpp:355) that aborts the process; closing the socket does not.
   */
  const rebind = async (): Promise<void> => {
    if (closed) return;
    const next = newServer();
    server.close();
    for (let attempt = 1; ; attempt++) {
      try {
        await next.bind(boundEndpoint); // the old socket frees the port a moment after close()
        break;
      } catch (err) {
        if (closed || attempt >= REBIND_ATTEMPTS) {
          next.close();
          if (closed) return;
          counters.inc("rebind-error");
          throw new ZeromqRebindError(boundEndpoint, { cause: err });
        }
        await new Promise((resolve) => setTimeout(resolve, REBIND_RETRY_MS));
      }
    }
    server = next;
    counters.inc("rebind");
    watch(next);
    receiving = Promise.allSettled([receiving, receiveFrom(next)]);
  };

  /** One rebind for every revocation that arrives before it starts; they queue behind a running one. */
  let queuedRebind: Promise<void> | undefined;
  const scheduleRebind = (): Promise<void> => {
    if (queuedRebind !== undefined) return queuedRebind;
    const start = (): Promise<void> => {
      queuedRebind = undefined;
      return rebind();
    };
    const next = revocations.then(start, start);
    queuedRebind = next;
    revocations = next.catch(() => {});
    return next;
  };

  const transport: ZeromqTransport = {
    address,
    maxFrameBytes: limits.maxFrameBytes,
    send(to, frame) {
      if (closed) return refuse("closed");
      if (!(frame instanceof Uint8Array) || typeof to !== "string") return refuse("unknown-address");
      if (frame.byteLength > limits.maxFrameBytes) return refuse("too-large");
      const problem = openPeer(to);
      if (problem === "unknown-address") return refuse("unknown-address");
      if (problem === "unauthorized-peer") return refuse("unknown-address", "unauthorized-peer");
      outbound.enqueue(to, frame);
      return null;
    },
    onFrame(next) {
      handler = next;
    },
    forget(to) {
      if (!closed) outbound.forget(to);
    },
    revoke(ed25519PublicKey) {
      const curveHex = curveHexOf(keyHex(ed25519PublicKey), ed25519PublicKey);
      if (curveHex === null) return Promise.resolve(); // no CURVE form: it can never connect
      revokedCurve.add(curveHex);
      outbound.closeKey(curveHex);
      // Only a key ZAP admitted can have a connection to our server (the decision is synchronous
      // and now sees the revocation), so a stranger's revocation costs every peer nothing.
      // (It still waits for a replacement already under way.)
      if (!admittedCurve.delete(curveHex)) return revocations;
      return scheduleRebind();
    },
    counters: () => counters.snapshot(),
    close() {
      closing ??= (async () => {
        closed = true;
        handler = undefined;
        outbound.closeAll();
        await revocations;
        server.close();
        zap.close();
        await Promise.allSettled([receiving, zapLoop]);
      })();
      return closing;
    },
  };
  return transport;
}
