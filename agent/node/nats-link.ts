/**
 * ringd on the NATS transport: how a node finds, trusts and uses its mesh's nats-server.
 *
 * - A ring-0 seed (a node that holds no stored link) runs Debian's `nats-server` as a supervised
 *   child in `<dataDir>/nats/`, on its listen port + NATS_PORT_OFFSET (joins stay on + 1). The
 *   server admits the nkeys of every certified, unrevoked node key the seed holds, each allowed to
 *   subscribe only to its own subject (`natsMemberPermissions`). When trust changes (a join, a
 *   revocation) the seed reloads the list, debounced by NATS_RELOAD_DEBOUNCE_MS: nats-server then
 *   closes the connection of every key no longer allowed.
 * - An issuer hands the link to a joiner inside its signed JoinResponse, as two `peers` entries:
 *   the server's URL (`nats://host:port`) and `nats-ca-sha256:<hex>`, the sha256 of the server's
 *   certificate. The certificate itself (a PEM of ~700 bytes) does not fit in a peer entry
 *   (MAX_ADDR_BYTES), and the protocol stays as it is: at its first start the joined node fetches
 *   the certificate from the server's TLS handshake, keeps it only if its digest is the one the
 *   issuer signed, and stores it. From then on it connects with that certificate as its only CA,
 *   and a restart needs neither the token nor the issuer.
 */
import { createHash, X509Certificate } from "node:crypto";
import { connect as tcpConnect } from "node:net";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import type { Logger } from "pino";
import {
  decodeCertificate,
  decodeEnvelope,
  decodeRevocation,
  type Identity,
  keyHex,
} from "../../protocol/index.ts";
import { startNatsServer } from "../nats-server.ts";
import { hostPort } from "../nats-server-files.ts";
import {
  isNatsToken,
  NatsConnectError,
  type NatsTransport,
  nats,
  natsMemberPermissions,
} from "../transport/nats.ts";
import type { Transport } from "../transport/transport.ts";
import type { MeshState } from "./mesh-state.ts";

/** The seed's nats-server listens on the node's listen port plus this (joins use + 1). */
export const NATS_PORT_OFFSET = 2;
/** The seed's nats-server keeps its config, certificate and pid file in `<dataDir>/<this>`. */
export const NATS_DATA_DIR = "nats";
/** Trust changes within this long are applied to the server in one reload. */
export const NATS_RELOAD_DEBOUNCE_MS = 100;
/** How long a starting node keeps trying to reach the server (it may be restarting). */
export const NATS_START_TIMEOUT_MS = 60_000;
/** Pause between connection attempts while starting. */
export const NATS_START_RETRY_MS = 500;
/** How long fetching the server's certificate may take. */
export const NATS_CA_FETCH_TIMEOUT_MS = 5_000;
/** Longest INFO line read before the TLS upgrade when fetching the certificate. */
export const MAX_NATS_INFO_BYTES = 64 * 1024;
/** Prefix of the `peers` entry carrying the sha256 of the server's certificate. */
export const NATS_CA_PEER_PREFIX = "nats-ca-sha256:";

/** A NATS node has no stored link to a nats-server and cannot run one (it is not a seed). */
export class NatsLinkMissingError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The certificate the server presented is not the one the issuer's JoinResponse named. */
export class NatsCaMismatchError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The server's certificate could not be fetched (unreachable, no TLS, timeout). */
export class NatsCaFetchError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** What the daemon needs of its peer transport: the contract plus counters and revoke. */
export interface DaemonTransport extends Transport {
  /** The transport's counters, for `status`. */
  counters(): Record<string, number>;
  /** Close the channels of a revoked key (or make the server do it). */
  revoke(ed25519PublicKey: Uint8Array): Promise<void>;
}

/** The NATS URL and certificate digest an issuer hands to joiners. */
export interface NatsJoinLink {
  readonly url: string;
  readonly caSha256: string;
}

/** A running NATS link: the transport, and the seed's server when this node runs it. */
export interface NatsLink {
  readonly transport: DaemonTransport;
  /** The `peers` entries of a JoinResponse: the URL and the certificate's digest. */
  readonly joinPeers: readonly string[];
  /** Client URL of the server this node runs, or undefined when it uses another's. */
  readonly serverUrl: string | undefined;
  /**
   * Apply the current trust to the server's allowed keys (debounced); resolves once the server
   * runs with them. A node that runs no server resolves at once.
   */
  refresh(): Promise<void>;
  /** Close the connection and stop the server; idempotent. */
  close(): Promise<void>;
}

/** Options of startNatsLink. */
export interface NatsLinkOptions {
  readonly dataDir: string;
  readonly identity: Identity;
  readonly meshId: string;
  /** May run the server when no link is stored (ring 0). */
  readonly mayServe: boolean;
  /** Host the server binds (the node's listen host). */
  readonly listenHost: string;
  /** The node's listen port; 0 lets the server pick a free port. */
  readonly listenPort: number;
  /** Host joiners are told to dial (and named in the server's certificate). */
  readonly advertiseHost: string;
  readonly state: MeshState;
  /** The keys the server must admit now: certified, unrevoked nodes. */
  readonly allowedKeys: () => Uint8Array[];
  readonly maxFrameBytes: number;
  readonly log: Logger;
}

/** The mesh id as a NATS subject token (a fingerprint without its `ed25519:` prefix). */
export function natsMeshToken(meshId: string): string {
  const token = meshId.slice(meshId.indexOf(":") + 1);
  if (!isNatsToken(token)) throw new NatsLinkMissingError(`mesh id ${meshId} is not a NATS subject token`);
  return token;
}

/** Lowercase hex sha256 of a PEM certificate's DER bytes. */
export function certificateSha256(pem: string): string {
  return createHash("sha256").update(new X509Certificate(pem).raw).digest("hex");
}

/** The `peers` entries that hand a NATS link to a joiner. */
export function natsJoinPeers(link: NatsJoinLink): string[] {
  return [link.url, `${NATS_CA_PEER_PREFIX}${link.caSha256}`];
}

/** The NATS link in a JoinResponse's `peers`, or undefined when it holds none (a ZeroMQ mesh). */
export function parseNatsJoinPeers(peers: readonly string[]): NatsJoinLink | undefined {
  const url = peers.find((p) => p.startsWith("nats://"));
  const pin = peers.find((p) => p.startsWith(NATS_CA_PEER_PREFIX))?.slice(NATS_CA_PEER_PREFIX.length);
  if (url === undefined || pin === undefined || !/^[0-9a-f]{64}$/.test(pin)) return undefined;
  return { url, caSha256: pin };
}

/**
 * Fetch the certificate a nats-server presents at `url` and return it as PEM if its sha256 is
 * `caSha256`. The server speaks first (a plaintext INFO line), then the connection turns TLS; no
 * credential is sent, and the certificate is trusted only through the digest.
 */
export async function fetchPinnedNatsCa(url: string, caSha256: string): Promise<string> {
  const { hostname, port } = new URL(url);
  const host = hostname.replace(/^\[|\]$/g, "");
  const raw = await new Promise<Buffer>((resolve, reject) => {
    const socket = tcpConnect({ host, port: Number(port) || 4222 });
    const fail = (err: unknown) => {
      socket.destroy();
      reject(new NatsCaFetchError(`could not fetch the certificate of ${url}`, { cause: err }));
    };
    const timer = setTimeout(() => fail(new Error("timed out")), NATS_CA_FETCH_TIMEOUT_MS);
    let info = "";
    const onData = (chunk: Buffer) => {
      info += chunk.toString("latin1");
      if (info.length > MAX_NATS_INFO_BYTES) return fail(new Error("no INFO line"));
      if (!info.includes("\r\n")) return;
      socket.off("data", onData);
      socket.pause();
      const secure = tlsConnect({ socket, rejectUnauthorized: false }, () => {
        const der = secure.getPeerCertificate().raw;
        clearTimeout(timer);
        secure.destroy();
        resolve(der);
      });
      secure.once("error", (err) => {
        clearTimeout(timer);
        fail(err);
      });
    };
    socket.on("data", onData);
    socket.once("error", (err) => {
      clearTimeout(timer);
      fail(err);
    });
  });
  const got = createHash("sha256").update(raw).digest("hex");
  if (got !== caSha256) {
    throw new NatsCaMismatchError(
      `the nats-server at ${url} presents certificate sha256 ${got}, but the issuer named ${caSha256}`,
    );
  }
  return new X509Certificate(raw).toString();
}

/** Start the node's NATS link: run the seed's server or reach the stored one, then connect. */
export async function startNatsLink(opts: NatsLinkOptions): Promise<NatsLink> {
  const meshToken = natsMeshToken(opts.meshId);
  const stored = await opts.state.natsLink();
  let server: Awaited<ReturnType<typeof startNatsServer>> | undefined;
  let servers: string;
  let caPem: string;
  let joinLink: NatsJoinLink;
  if (stored === undefined) {
    if (!opts.mayServe)
      throw new NatsLinkMissingError(
        "this node holds no NATS server link (it joined a ZeroMQ mesh, or before NATS links existed); " +
          "only a ring-0 seed runs its own nats-server",
      );
    server = await startNatsServer({
      dataDir: join(opts.dataDir, NATS_DATA_DIR),
      allowedKeys: opts.allowedKeys(),
      permissions: natsMemberPermissions(meshToken),
      host: opts.listenHost,
      ...(opts.listenPort === 0 ? {} : { port: opts.listenPort + NATS_PORT_OFFSET }),
      tlsNames: [opts.advertiseHost],
    });
    servers = server.url;
    caPem = server.caPem;
    joinLink = {
      url: `nats://${hostPort(opts.advertiseHost, server.port)}`,
      caSha256: certificateSha256(caPem),
    };
    opts.log.info({ url: joinLink.url, pid: server.pid }, "nats-server running");
  } else {
    servers = stored.url;
    joinLink = { url: stored.url, caSha256: stored.caSha256 };
    if (stored.caPem !== undefined && certificateSha256(stored.caPem) === stored.caSha256) {
      caPem = stored.caPem;
    } else {
      caPem = await retrying(() => fetchPinnedNatsCa(stored.url, stored.caSha256));
      await opts.state.putNatsLink({ ...joinLink, caPem });
    }
  }

  let transport: NatsTransport;
  try {
    const factory = nats({
      servers,
      caPem,
      identity: opts.identity,
      meshId: meshToken,
      maxFrameBytes: opts.maxFrameBytes,
      maxReconnectAttempts: -1, // a seed restart takes as long as it takes; a revoked key still ends
    });
    transport = await retrying(() => factory({}));
  } catch (err) {
    await server?.stop();
    throw err;
  }
  void transport.ended.then((err) => {
    if (err !== undefined) opts.log.error({ err }, "the NATS connection ended: this node is cut off");
  });

  let timer: ReturnType<typeof setTimeout> | undefined;
  let waiting: { resolve: () => void; reject: (err: unknown) => void }[] = [];
  let lastKeys = keySetOf(opts.allowedKeys());
  const flush = (): void => {
    timer = undefined;
    const batch = waiting;
    waiting = [];
    const keys = opts.allowedKeys();
    const set = keySetOf(keys);
    if (server === undefined || set === lastKeys) {
      for (const w of batch) w.resolve();
      return;
    }
    server.reload(keys).then(
      () => {
        lastKeys = set;
        opts.log.info({ keys: keys.length }, "nats-server reloaded its members");
        for (const w of batch) w.resolve();
      },
      (err: unknown) => {
        for (const w of batch) w.reject(err);
      },
    );
  };
  const refresh = (): Promise<void> => {
    if (server === undefined) return Promise.resolve();
    const done = new Promise<void>((resolve, reject) => waiting.push({ resolve, reject }));
    timer ??= setTimeout(flush, NATS_RELOAD_DEBOUNCE_MS);
    return done;
  };
  let closing: Promise<void> | undefined;
  return {
    transport: {
      address: transport.address,
      maxFrameBytes: transport.maxFrameBytes,
      send: (to, frame) => transport.send(to, frame),
      onFrame: (handler) => transport.onFrame(handler),
      close: () => transport.close(),
      counters: () => flatStats(transport),
      // The server, not this endpoint, cuts a revoked key off: reload its allowed keys.
      revoke: () => refresh(),
    },
    joinPeers: natsJoinPeers(joinLink),
    serverUrl: server?.url,
    refresh,
    close() {
      closing ??= (async () => {
        if (timer !== undefined) clearTimeout(timer);
        for (const w of waiting) w.resolve();
        waiting = [];
        await transport.close();
        await server?.stop();
      })();
      return closing;
    },
  };
}

/** Run `attempt` until it succeeds or NATS_START_TIMEOUT_MS passes (a mismatched CA is final). */
async function retrying<T>(attempt: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + NATS_START_TIMEOUT_MS;
  for (;;) {
    try {
      return await attempt();
    } catch (err) {
      const transient = err instanceof NatsConnectError || err instanceof NatsCaFetchError;
      if (!transient || Date.now() >= deadline) throw err;
    }
    await new Promise((wake) => setTimeout(wake, NATS_START_RETRY_MS));
  }
}

function keySetOf(keys: readonly Uint8Array[]): string {
  return keys
    .map((k) => Buffer.from(k).toString("hex"))
    .sort()
    .join(",");
}

function flatStats(transport: NatsTransport): Record<string, number> {
  const s = transport.stats();
  const out: Record<string, number> = {
    sent: s.sent,
    received: s.received,
    droppedNoHandler: s.droppedNoHandler,
    disconnects: s.disconnects,
  };
  for (const [reason, n] of Object.entries(s.refusedByReason)) out[`refused:${reason}`] = n;
  for (const [reason, n] of Object.entries(s.malformedByReason)) out[`malformed:${reason}`] = n;
  return out;
}

/** The keys of `certificates` that belong to nodes (not operators) and pass `isTrusted`. */
export function memberNodeKeys(
  certificates: ReadonlyMap<string, Uint8Array>,
  isTrusted: (subjectHex: string) => boolean,
): Uint8Array[] {
  const keys: Uint8Array[] = [];
  for (const [hex, envelope] of certificates) {
    if (!isTrusted(hex)) continue;
    const cert = decodeCertificate(decodeEnvelope(envelope));
    if (cert.roles.includes("node")) keys.push(cert.subject);
  }
  return keys;
}

/** The subjects (hex) the revocation envelopes name. */
export function revokedSubjects(revocations: readonly Uint8Array[]): Set<string> {
  return new Set(revocations.map((env) => keyHex(decodeRevocation(decodeEnvelope(env)).subject)));
}
