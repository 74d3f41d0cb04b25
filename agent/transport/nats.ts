/**
 * The NATS transport: each endpoint is one connection to a nats-server (or a cluster of them),
 * authenticated by the node's ed25519 key as an nkey, over TLS with the server's certificate
 * pinned as the only CA.
 *
 * Addressing: endpoint `a` of mesh `m` subscribes to `enjin.m.n.a` and a frame for it is published
 * there. The sender's address rides in the `Enjin-From` header; like every transport's `from`, it
 * is a claim, not a proof (signatures above the transport say who really sent a frame). Addresses
 * and mesh ids are single subject tokens: 1..MAX_NATS_TOKEN_BYTES of [A-Za-z0-9_-].
 *
 * NATS keeps order per publisher and subject, and the server, not this endpoint, knows who is
 * subscribed: a send to an address nobody holds is accepted and dropped by the server.
 * No module-level state.
 */
import { connect, ErrorCode, headers, type Msg, type MsgHdrs, NatsError, nkeyAuthenticator } from "nats";
import { base32, type Identity } from "../../protocol/index.ts";
import type { NatsUserPermissions } from "../nats-server-files.ts";
import { userNkeySeed } from "./nkey.ts";
import type { SendRefusal, Transport, TransportServices } from "./transport.ts";

/** Default largest frame (256 KiB, the protocol's link frame limit). */
export const DEFAULT_NATS_MAX_FRAME_BYTES = 256 * 1024;
/** Longest address or mesh id (one subject token). */
export const MAX_NATS_TOKEN_BYTES = 128;
/** Room reserved in the server's max_payload for the NATS header block of one frame. */
export const NATS_HEADER_ALLOWANCE_BYTES = 1024;
/** Default wait for the first connection. */
export const DEFAULT_NATS_CONNECT_TIMEOUT_MS = 5_000;
/** Default pause between reconnect attempts. */
export const DEFAULT_NATS_RECONNECT_WAIT_MS = 1_000;
/** Default reconnect attempts before the endpoint gives up and closes (-1: forever). */
export const DEFAULT_NATS_MAX_RECONNECT_ATTEMPTS = 60;
/** First subject token of every enjin subject. */
export const NATS_SUBJECT_ROOT = "enjin";
/** Header that carries the sender's address. */
export const NATS_FROM_HEADER = "Enjin-From";

const TOKEN = /^[A-Za-z0-9_-]+$/;

/** True when `s` can be an address or mesh id. */
export function isNatsToken(s: string): boolean {
  return s.length > 0 && s.length <= MAX_NATS_TOKEN_BYTES && TOKEN.test(s);
}

/** An option of nats() is invalid (mesh id or address not a subject token, bad size, ...). */
export class InvalidNatsTransportOptionError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The endpoint could not connect; `cause` is the client library's error. */
export class NatsConnectError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The server refused this node's nkey (not, or no longer, an allowed member). */
export class NatsAuthorizationError extends NatsConnectError {}

/** The server does not let this node subscribe to its own address's subject. */
export class NatsPermissionError extends NatsConnectError {}

/** The server's max_payload cannot hold maxFrameBytes plus the header. */
export class NatsFrameLimitError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Options of the NATS transport. */
export interface NatsTransportOptions {
  /** Server URLs (`nats://host:port`); TLS is always used. */
  readonly servers: string | readonly string[];
  /** The server certificate (PEM) pinned as the only trusted CA. */
  readonly caPem: string;
  /** The node's key pair; its public key must be an allowed nkey on the server. */
  readonly identity: Identity;
  /** The mesh id (one subject token), shared by every endpoint of a mesh. */
  readonly meshId: string;
  /** Largest frame (default DEFAULT_NATS_MAX_FRAME_BYTES). */
  readonly maxFrameBytes?: number;
  /** Connection name shown in the server's monitoring (default: the address). */
  readonly name?: string;
  /** Wait for the first connection (default DEFAULT_NATS_CONNECT_TIMEOUT_MS). */
  readonly connectTimeoutMs?: number;
  /** Pause between reconnect attempts (default DEFAULT_NATS_RECONNECT_WAIT_MS). */
  readonly reconnectWaitMs?: number;
  /** Attempts before giving up (default DEFAULT_NATS_MAX_RECONNECT_ATTEMPTS; -1 forever). */
  readonly maxReconnectAttempts?: number;
}

/** Why an inbound message was dropped. */
export type NatsMalformedReason = "no-sender" | "bad-sender" | "too-large";

/** Counters of one NATS endpoint. */
export interface NatsTransportStats {
  /** Frames handed to the client for publishing. */
  readonly sent: number;
  /** Sends refused locally, per reason. */
  readonly refusedByReason: Readonly<Record<SendRefusal, number>>;
  /** Frames handed to the handler. */
  readonly received: number;
  /** Inbound messages dropped because they were malformed, per reason. */
  readonly malformedByReason: Readonly<Record<NatsMalformedReason, number>>;
  /** Inbound frames dropped because no handler was installed. */
  readonly droppedNoHandler: number;
  /** Times the connection was lost (it may have come back). */
  readonly disconnects: number;
}

/** A NATS endpoint: a Transport plus its counters and the end of its connection. */
export interface NatsTransport extends Transport {
  /** A snapshot of the counters. */
  stats(): NatsTransportStats;
  /**
   * Resolves when the connection has ended for good: with undefined after close(), or with the
   * reason when the server cut it off (a revoked nkey gets a NatsAuthorizationError) or reconnects
   * ran out. Sends are refused with "closed" from then on.
   */
  readonly ended: Promise<Error | undefined>;
}

/** The factory nats() returns; it satisfies TransportFactory. */
export type NatsTransportFactory = (services: TransportServices) => Promise<NatsTransport>;

function wrapConnectError(err: unknown, what: string): Error {
  if (err instanceof NatsError && err.code === ErrorCode.AuthorizationViolation) {
    return new NatsAuthorizationError(`${what}: the server refused this node's nkey`, { cause: err });
  }
  const detail = err instanceof Error ? err.message : String(err);
  return new NatsConnectError(`${what}: ${detail}`, { cause: err });
}

/** The subject at which the endpoint `address` of mesh `meshId` receives. */
export function natsSubject(meshId: string, address: string): string {
  return `${NATS_SUBJECT_ROOT}.${meshId}.n.${address}`;
}

/**
 * Server-side permissions for members whose address is their key (the default address): each may
 * publish to any endpoint of the mesh and subscribe only to its own subject, so no member can
 * listen to another's frames. Pass it as startNatsServer's `permissions`.
 */
export function natsMemberPermissions(meshId: string): (publicKey: Uint8Array) => NatsUserPermissions {
  if (!isNatsToken(meshId)) {
    throw new InvalidNatsTransportOptionError(`mesh id is not a subject token: ${JSON.stringify(meshId)}`);
  }
  return (publicKey) => ({
    publish: [natsSubject(meshId, "*")],
    subscribe: [natsSubject(meshId, defaultNatsAddress(publicKey))],
  });
}

/** The address of an endpoint that asks for none: its public key in lowercase base32. */
export function defaultNatsAddress(publicKey: Uint8Array): string {
  return base32(publicKey);
}

/** The NATS transport factory (see the file comment). */
export function nats(opts: NatsTransportOptions): NatsTransportFactory {
  const maxFrameBytes = opts.maxFrameBytes ?? DEFAULT_NATS_MAX_FRAME_BYTES;
  if (!(Number.isInteger(maxFrameBytes) && maxFrameBytes >= 0)) {
    throw new InvalidNatsTransportOptionError(`maxFrameBytes must be an integer >= 0, got ${maxFrameBytes}`);
  }
  if (!isNatsToken(opts.meshId)) {
    throw new InvalidNatsTransportOptionError(
      `mesh id is not a subject token: ${JSON.stringify(opts.meshId)}`,
    );
  }

  return async (services) => {
    const address = services.listen ?? defaultNatsAddress(opts.identity.publicKey);
    if (!isNatsToken(address)) {
      throw new InvalidNatsTransportOptionError(`address is not a subject token: ${JSON.stringify(address)}`);
    }
    const seed = userNkeySeed(opts.identity.secretKey);
    const servers = typeof opts.servers === "string" ? [opts.servers] : [...opts.servers];
    const what = `nats endpoint ${address} at ${servers.join(",")}`;
    let nc: Awaited<ReturnType<typeof connect>>;
    try {
      nc = await connect({
        servers,
        tls: { ca: opts.caPem },
        authenticator: nkeyAuthenticator(seed),
        name: opts.name ?? address,
        timeout: opts.connectTimeoutMs ?? DEFAULT_NATS_CONNECT_TIMEOUT_MS,
        reconnectTimeWait: opts.reconnectWaitMs ?? DEFAULT_NATS_RECONNECT_WAIT_MS,
        maxReconnectAttempts: opts.maxReconnectAttempts ?? DEFAULT_NATS_MAX_RECONNECT_ATTEMPTS,
      });
    } catch (err) {
      throw wrapConnectError(err, what);
    }
    const serverMax = nc.info?.max_payload ?? 0;
    if (serverMax < maxFrameBytes + NATS_HEADER_ALLOWANCE_BYTES) {
      await nc.close();
      throw new NatsFrameLimitError(
        `${what}: server max_payload ${serverMax} < maxFrameBytes ${maxFrameBytes} + ${NATS_HEADER_ALLOWANCE_BYTES}`,
      );
    }

    let closed = false;
    let handler: ((from: string, frame: Uint8Array) => void) | undefined;
    let sent = 0;
    let received = 0;
    let droppedNoHandler = 0;
    let disconnects = 0;
    const refusedByReason: Record<SendRefusal, number> = { "too-large": 0, closed: 0, "unknown-address": 0 };
    const malformedByReason: Record<NatsMalformedReason, number> = {
      "no-sender": 0,
      "bad-sender": 0,
      "too-large": 0,
    };
    const refuse = (reason: SendRefusal): SendRefusal => {
      refusedByReason[reason]++;
      return reason;
    };

    let subscribeError: NatsError | undefined;
    let ready = false;
    let lostSubscription: Error | undefined;
    const onMessage = (err: NatsError | null, msg: Msg): void => {
      if (err !== null) {
        subscribeError = err;
        if (ready && !closed) {
          // The server dropped our subscription (permissions changed on a reload): a deaf
          // endpoint must not look open, so it ends.
          lostSubscription = new NatsPermissionError(`${what}: the server dropped the subscription`, {
            cause: err,
          });
          void nc.close().catch(() => {});
        }
        return;
      }
      if (closed) return;
      const from = msg.headers?.get(NATS_FROM_HEADER) ?? "";
      if (from === "") {
        malformedByReason["no-sender"]++;
        return;
      }
      if (!isNatsToken(from)) {
        malformedByReason["bad-sender"]++;
        return;
      }
      if (msg.data.byteLength > maxFrameBytes) {
        malformedByReason["too-large"]++;
        return;
      }
      if (handler === undefined) {
        droppedNoHandler++;
        return;
      }
      received++;
      try {
        handler(from, msg.data.slice());
      } catch (handlerError) {
        // Thrown here, it would unwind through the client's parser and lose the frames after it
        // in the same read; thrown on a microtask, it still reaches the process's error handling.
        queueMicrotask(() => {
          throw handlerError;
        });
      }
    };
    nc.subscribe(natsSubject(opts.meshId, address), { callback: onMessage });
    try {
      await nc.flush(); // the server has the subscription: a frame sent to us from now on arrives
    } catch (err) {
      await nc.close();
      throw wrapConnectError(err, what);
    }
    if (subscribeError !== undefined) {
      // A refused subscription is answered before the flush's PONG, so it is known by now.
      await nc.close();
      throw new NatsPermissionError(`${what}: the server refused the subscription to ${address}`, {
        cause: subscribeError,
      });
    }

    ready = true;

    // Count disconnects and keep the code of the last error the server sent (an auth violation
    // when the node's nkey is revoked).
    let lastErrorCode: string | undefined;
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === "disconnect") disconnects++;
        if (s.type === "error" && typeof s.data === "string") lastErrorCode = s.data;
      }
    })().catch(() => {});

    const fromHeader: MsgHdrs = headers();
    fromHeader.set(NATS_FROM_HEADER, address);

    let closing: Promise<void> | undefined;
    const ended = nc.closed().then((err) => {
      const byUs = closing !== undefined;
      closed = true;
      if (lostSubscription !== undefined) return lostSubscription;
      if (byUs) return undefined;
      if (err !== undefined) return wrapConnectError(err, what);
      if (lastErrorCode === ErrorCode.AuthorizationViolation) {
        return new NatsAuthorizationError(`${what}: the server refused this node's nkey`);
      }
      return new NatsConnectError(`${what}: connection closed (last error: ${lastErrorCode ?? "none"})`);
    });

    const transport: NatsTransport = {
      address,
      maxFrameBytes,
      ended,
      send(to, frame) {
        if (closed || nc.isClosed()) return refuse("closed");
        if (frame.byteLength > maxFrameBytes) return refuse("too-large");
        if (!isNatsToken(to)) return refuse("unknown-address");
        try {
          nc.publish(natsSubject(opts.meshId, to), frame.slice(), { headers: fromHeader });
        } catch (err) {
          if (err instanceof NatsError && err.code === ErrorCode.MaxPayloadExceeded)
            return refuse("too-large");
          return refuse("closed");
        }
        sent++;
        return null;
      },
      onFrame(h) {
        handler = h;
      },
      close() {
        closing ??= (async () => {
          closed = true;
          handler = undefined;
          if (!nc.isClosed()) await nc.close();
          await ended;
        })();
        return closing;
      },
      stats: () => ({
        sent,
        refusedByReason: { ...refusedByReason },
        received,
        malformedByReason: { ...malformedByReason },
        droppedNoHandler,
        disconnects,
      }),
    };
    return transport;
  };
}
