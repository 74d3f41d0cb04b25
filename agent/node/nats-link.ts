/**
 * ringd on the NATS transport: how a node finds, trusts and uses its mesh's nats-servers.
 *
 * - Every ring-0 seed runs Debian's `nats-server` as a supervised child in `<dataDir>/nats/`:
 *   clients on its listen port + NATS_PORT_OFFSET (ringd-ports.ts), routes from other seeds'
 *   servers on + NATS_ROUTE_PORT_OFFSET. The server admits the nkeys of every certified, unrevoked
 *   node key the seed holds, each allowed to subscribe only to its own subject
 *   (`natsMemberPermissions`). When trust changes (a join, a revocation) the seed reloads the list,
 *   debounced by NATS_RELOAD_DEBOUNCE_MS: nats-server then closes the connection of every key no
 *   longer allowed.
 * - Seeds cluster their servers with routes, TLS-verified both ways against the certificates of
 *   servers run by certified ring-0 nodes only (nats-routes.ts): a seed that joins trusts its
 *   issuer's server through the join pin below, and every seed gossips a signed route announcement
 *   (its route URL and certificate) that the others add to their routes and CA file with a reload.
 *   A revoked seed's route URL and certificate are taken out, which closes its route.
 *   Until its server has a peer, a seed that joined connects its own node to its issuer's server
 *   (so its announcement reaches the cluster), trusting its own server too: if the issuer's server
 *   dies, the client fails over to its own, which the cluster advertised to it. Once routed, a
 *   seed connects to its own server.
 * - An issuer hands the link to a joiner inside its signed JoinResponse, as two `peers` entries:
 *   its server's URL (`nats://host:port`) and `nats-ca-sha256:<hex>`, the sha256 of the server's
 *   certificate. The certificate itself (a PEM of ~700 bytes) does not fit in a peer entry
 *   (MAX_ADDR_BYTES), and the protocol stays as it is: at its first start the joined node fetches
 *   the certificate from the server's TLS handshake, keeps it only if its digest is the one the
 *   issuer signed, and stores it (nats-ca.ts). From then on it connects with that certificate as its
 *   CA, and a restart needs neither the token nor the issuer. A ring-1 node stays on its issuer's
 *   server.
 * - With `natsUrl` (`--nats-url`), the node runs no server and connects to that existing NATS
 *   server or cluster, trusting the CA in `natsCaFile`, as the nkey of its own key; the cluster's
 *   operator admits the nodes' nkeys and cuts off revoked ones. Joiners are handed the URLs but no
 *   pin: they too must be given `--nats-url`. A ring-0 node that joined such a mesh and is started
 *   without it is refused (NatsLinkMissingError) rather than left to run a server nobody routes to.
 */
import { access } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "pino";
import {
  decodeCertificate,
  decodeEnvelope,
  decodeRevocation,
  type Identity,
  keyHex,
  MAX_ADDR_BYTES,
} from "../../protocol/index.ts";
import type { MeshNode } from "../mesh-node.ts";
import { type NatsServer, startNatsServer } from "../nats-server.ts";
import { hostPort, NATS_CERT_FILE } from "../nats-server-files.ts";
import {
  isNatsToken,
  NatsConnectError,
  type NatsTransport,
  nats,
  natsMemberPermissions,
} from "../transport/nats.ts";
import { userNkey } from "../transport/nkey.ts";
import type { Transport } from "../transport/transport.ts";
import type { MeshState, StoredNatsLink } from "./mesh-state.ts";
import { fetchPinnedNatsCa, NatsCaFetchError, readNatsCaFile } from "./nats-ca.ts";
import { certificateSha256, RoutePeerBook } from "./nats-routes.ts";
import { type SeedRoutes, seedRoutes } from "./nats-seed-routes.ts";
import { NATS_PORT_OFFSET, NATS_ROUTE_PORT_OFFSET } from "./ringd-ports.ts";
import { ROOT_KEY_FILE } from "./seed.ts";

export {
  fetchPinnedNatsCa,
  MAX_NATS_INFO_BYTES,
  NATS_CA_FETCH_TIMEOUT_MS,
  NatsCaFetchError,
  NatsCaFileError,
  NatsCaMismatchError,
} from "./nats-ca.ts";
export { certificateSha256, NATS_ROUTE_TOPIC } from "./nats-routes.ts";
export { NATS_RELOAD_DEBOUNCE_MS, NATS_ROUTE_ANNOUNCE_INTERVAL_MS } from "./nats-seed-routes.ts";

export { NATS_PORT_OFFSET, NATS_ROUTE_PORT_OFFSET } from "./ringd-ports.ts";
/** The seed's nats-server keeps its config, certificate and pid file in `<dataDir>/<this>`. */
export const NATS_DATA_DIR = "nats";
/** How long a starting node keeps trying to reach the server (it may be restarting). */
export const NATS_START_TIMEOUT_MS = 60_000;
/** Pause between connection attempts while starting. */
export const NATS_START_RETRY_MS = 500;
/** Prefix of the `peers` entry carrying the sha256 of the server's certificate. */
export const NATS_CA_PEER_PREFIX = "nats-ca-sha256:";

/** A NATS node has no link to a nats-server and may not run one. */
export class NatsLinkMissingError extends Error {
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

/** A running NATS link: the transport, and this node's server when it runs one. */
export interface NatsLink {
  readonly transport: DaemonTransport;
  /** The `peers` entries of a JoinResponse: the URL and the certificate's digest. */
  readonly joinPeers: readonly string[];
  /** Client URL of the server this node runs, or undefined when it uses another's. */
  readonly serverUrl: string | undefined;
  /** The server this node runs (a ring-0 seed without natsUrl), for diagnostics. */
  readonly server: NatsServer | undefined;
  /**
   * Apply the current trust to the server's allowed keys and route peers (debounced); resolves
   * once the server runs with them, or after `waitAtMostMs` if given. A node that runs no server
   * resolves at once.
   */
  refresh(waitAtMostMs?: number): Promise<void>;
  /**
   * Wire the started node: a seed announces its server's route on the mesh (now and every
   * NATS_ROUTE_ANNOUNCE_INTERVAL_MS) and takes the announcements of other seeds. Idempotent.
   */
  attach(node: MeshNode): void;
  /** Close the connection and stop the server; idempotent. */
  close(): Promise<void>;
}

/** Options of startNatsLink. */
export interface NatsLinkOptions {
  readonly dataDir: string;
  readonly identity: Identity;
  readonly meshId: string;
  /** May run a server (ring 0). */
  readonly mayServe: boolean;
  /** Host the server binds (the node's listen host). */
  readonly listenHost: string;
  /** The node's listen port; 0 lets the server pick free ports. */
  readonly listenPort: number;
  /** Host joiners and other servers are told to dial (and named in the server's certificate). */
  readonly advertiseHost: string;
  readonly state: MeshState;
  /** The keys the server must admit now: certified, unrevoked nodes. */
  readonly allowedKeys: () => Uint8Array[];
  /** Whether a key (hex) is revoked: its server is no longer routed to or trusted. */
  readonly isRevoked?: (keyHex: string) => boolean;
  /** An existing NATS server or cluster (comma-separated URLs): run none, connect there. */
  readonly natsUrl?: string | null;
  /** PEM file of the CA that signed natsUrl's certificates (required with natsUrl). */
  readonly natsCaFile?: string | null;
  readonly maxFrameBytes: number;
  readonly log: Logger;
}

/** The mesh id as a NATS subject token (a fingerprint without its `ed25519:` prefix). */
export function natsMeshToken(meshId: string): string {
  const token = meshId.slice(meshId.indexOf(":") + 1);
  if (!isNatsToken(token)) throw new NatsLinkMissingError(`mesh id ${meshId} is not a NATS subject token`);
  return token;
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

/** The URLs of a `natsUrl` setting (comma-separated). */
export function natsUrlList(natsUrl: string): string[] {
  return natsUrl
    .split(",")
    .map((u) => u.trim())
    .filter((u) => u !== "");
}

/** Start the node's NATS link (see the file comment for which of the three kinds). */
export async function startNatsLink(opts: NatsLinkOptions): Promise<NatsLink> {
  const meshToken = natsMeshToken(opts.meshId);
  if (opts.natsUrl !== undefined && opts.natsUrl !== null) return externalLink(opts, meshToken, opts.natsUrl);
  const stored = await opts.state.natsLink();
  if (!opts.mayServe) {
    if (stored === undefined)
      throw new NatsLinkMissingError(
        "this node holds no NATS server link: it joined a ZeroMQ mesh, or a mesh on an existing NATS " +
          "cluster (then start it with --nats-url and --nats-ca-file); only a ring-0 seed runs its own nats-server",
      );
    const caPem = await pinnedCa(opts, stored);
    return linkAround(opts, meshToken, { servers: stored.url, caPem }, natsJoinPeers(stored));
  }
  return seedLink(opts, meshToken, stored);
}

/** A ring-0 seed: run the server, routed to the other seeds' servers. */
async function seedLink(
  opts: NatsLinkOptions,
  meshToken: string,
  stored: StoredNatsLink | undefined,
): Promise<NatsLink> {
  const dataDir = join(opts.dataDir, NATS_DATA_DIR);
  if (
    stored === undefined &&
    !((await exists(join(opts.dataDir, ROOT_KEY_FILE))) || (await exists(join(dataDir, NATS_CERT_FILE))))
  )
    throw new NatsLinkMissingError(
      "this ring-0 node joined a mesh whose seeds use an existing NATS cluster (its issuer handed out " +
        "no nats-server of its own): start it with --nats-url and --nats-ca-file",
    );
  const pinnedPem = stored === undefined ? undefined : await pinnedCa(opts, stored);
  const book = await RoutePeerBook.load(dataDir);
  const isRevoked = opts.isRevoked ?? (() => false);
  if (book.dropRevoked(isRevoked)) await book.save();
  const routes = book.routeSet(pinnedPem);
  const server = await startNatsServer({
    dataDir,
    allowedKeys: opts.allowedKeys(),
    permissions: natsMemberPermissions(meshToken),
    host: opts.listenHost,
    ...(opts.listenPort === 0 ? {} : { port: opts.listenPort + NATS_PORT_OFFSET }),
    advertiseHost: opts.advertiseHost,
    // Servers of one cluster must have distinct names: the node's key tells them apart.
    serverName: `enjin-${keyHex(opts.identity.publicKey).slice(0, 16)}`,
    cluster: {
      ...(opts.listenPort === 0 ? {} : { port: opts.listenPort + NATS_ROUTE_PORT_OFFSET }),
      routes: routes.routes,
      trustedPeerCertPems: routes.trustedPeerCertPems,
    },
  });
  const joinLink = {
    url: `nats://${hostPort(opts.advertiseHost, server.port)}`,
    caSha256: certificateSha256(server.caPem),
  };
  opts.log.info(
    { url: joinLink.url, route: server.clusterUrl, peers: book.peers().length, pid: server.pid },
    "nats-server running",
  );
  // Never routed yet: ride the issuer's server, so that this seed's announcement reaches it.
  const upstream = book.peers().length === 0 && stored !== undefined ? stored.url : server.url;
  const caPem = [server.caPem, ...routes.trustedPeerCertPems].join("\n");
  const routing = seedRoutes({
    server,
    book,
    pinnedPem,
    isRevoked,
    ownKeyHex: keyHex(opts.identity.publicKey),
    allowedKeys: opts.allowedKeys,
    log: opts.log,
  });
  try {
    return await linkAround(opts, meshToken, { servers: upstream, caPem }, natsJoinPeers(joinLink), routing);
  } catch (err) {
    await server.stop();
    throw err;
  }
}

/** `--nats-url`: an existing server or cluster, no server of our own. */
async function externalLink(opts: NatsLinkOptions, meshToken: string, natsUrl: string): Promise<NatsLink> {
  if (opts.natsCaFile === undefined || opts.natsCaFile === null)
    throw new NatsLinkMissingError("natsUrl is set without natsCaFile: give --nats-ca-file");
  const caPem = await readNatsCaFile(opts.natsCaFile);
  const servers = natsUrlList(natsUrl);
  opts.log.info(
    { servers, nkey: userNkey(opts.identity.publicKey) },
    "using an existing NATS server (natsUrl): its operator must admit this nkey",
  );
  const peers = servers.filter((u) => Buffer.byteLength(u) <= MAX_ADDR_BYTES).slice(0, 4);
  return linkAround(opts, meshToken, { servers, caPem }, peers);
}

/** The issuer's certificate for `stored`, fetched and checked against the pin once, then stored. */
async function pinnedCa(opts: NatsLinkOptions, stored: StoredNatsLink): Promise<string> {
  if (stored.caPem !== undefined && certificateSha256(stored.caPem) === stored.caSha256) return stored.caPem;
  const caPem = await retrying(() => fetchPinnedNatsCa(stored.url, stored.caSha256));
  await opts.state.putNatsLink({ url: stored.url, caSha256: stored.caSha256, caPem });
  return caPem;
}

/** Connect the transport and put the link together around it. */
async function linkAround(
  opts: NatsLinkOptions,
  meshToken: string,
  connectTo: { servers: string | readonly string[]; caPem: string },
  joinPeers: readonly string[],
  routing?: SeedRoutes,
): Promise<NatsLink> {
  const factory = nats({
    servers: connectTo.servers,
    caPem: connectTo.caPem,
    identity: opts.identity,
    meshId: meshToken,
    maxFrameBytes: opts.maxFrameBytes,
    maxReconnectAttempts: -1, // a seed restart takes as long as it takes; a revoked key still ends
  });
  let transport: NatsTransport;
  try {
    transport = await retrying(() => factory({}));
  } catch (err) {
    opts.log.error({ err, nkey: userNkey(opts.identity.publicKey) }, "could not connect to NATS");
    throw err;
  }
  void transport.ended.then((err) => {
    if (err !== undefined) opts.log.error({ err }, "the NATS connection ended: this node is cut off");
  });
  let closing: Promise<void> | undefined;
  const refresh = (waitAtMostMs?: number): Promise<void> =>
    routing?.refresh(waitAtMostMs) ?? Promise.resolve();
  return {
    transport: {
      address: transport.address,
      maxFrameBytes: transport.maxFrameBytes,
      send: (to, frame) => transport.send(to, frame),
      onFrame: (handler) => transport.onFrame(handler),
      close: () => transport.close(),
      counters: () => ({ ...flatStats(transport), ...routing?.counters() }),
      // The server, not this endpoint, cuts a revoked key off: reload its allowed keys.
      revoke: () => refresh(),
    },
    joinPeers,
    serverUrl: routing?.server.url,
    server: routing?.server,
    refresh,
    attach: (node) => routing?.attach(node),
    close() {
      closing ??= (async () => {
        routing?.close();
        await transport.close();
        await routing?.server.stop();
      })();
      return closing;
    },
  };
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
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
