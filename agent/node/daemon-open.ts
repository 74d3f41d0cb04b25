/**
 * The sockets a ringd opens at start-up, before its MeshNode exists: the peer transport (NATS or
 * ZeroMQ, each library loaded only by the nodes that use it, for start-up time and memory) and, on
 * an issuer, the join endpoint with its token issuer. Each pushes onto `opened` how to close what
 * it opened, so a start that fails later closes it again (Daemon.start).
 */
import { networkInterfaces } from "node:os";
import type { Logger } from "pino";
import { deriveTokenSealKey, TokenIssuer } from "../../bootstrap/index.ts";
import { type Identity, keyHex } from "../../protocol/index.ts";
import type { DaemonConfig } from "../daemon/config-fields.ts";
import type { MeshNode } from "../mesh-node.ts";
import type { NodeStore } from "../store/store.ts";
import type { ZeromqTransport } from "../transport/zeromq.ts";
import type { MeshIdentity, MeshState, SelfStanding } from "./mesh-state.ts";
import type { DaemonTransport, NatsLink } from "./nats-link.ts";
import { JOIN_PORT_OFFSET } from "./ringd-ports.ts";

/** Gossip frames on real transports may be this large (results carry command output). */
export const DAEMON_GOSSIP_FRAME_BYTES = 128 * 1024;

/** How to close one thing a start opened. */
export type Closer = () => Promise<unknown>;

/** Where a node listens, split, and the host it tells others (its primary address when on all). */
export interface ListenParts {
  readonly host: string;
  readonly port: number;
  readonly advertiseHost: string;
}

/** Split `host:port` (IPv6 in brackets) and pick the host to advertise. */
export function listenParts(listen: string): ListenParts {
  const i = listen.lastIndexOf(":");
  const host = listen.slice(0, i).replace(/^\[|\]$/g, "");
  const port = Number(listen.slice(i + 1));
  return { host, port, advertiseHost: host === "0.0.0.0" || host === "*" ? primaryAddress() : host };
}

/** A ZeroMQ endpoint on `host` (all interfaces for 0.0.0.0) and `port`. */
export function zeromqListen(host: string, port: number): string {
  return `tcp://${host === "0.0.0.0" ? "*" : host}:${port}`;
}

/** What the peer transport needs to know about the node that is being started. */
export interface PeerTransportOptions {
  readonly config: DaemonConfig;
  readonly listen: ListenParts;
  readonly identity: Identity;
  readonly mesh: MeshIdentity;
  readonly self: SelfStanding;
  readonly state: MeshState;
  readonly certificates: ReadonlyMap<string, Uint8Array>;
  readonly revocations: readonly Uint8Array[];
  /** The node, once it exists: its trust store decides who may connect from then on. */
  readonly node: () => MeshNode | undefined;
  readonly log: Logger;
}

/** Open the node's peer transport: a NatsLink's (and a seed's nats-server), or a ZeroMQ socket. */
export async function openPeerTransport(
  o: PeerTransportOptions,
  opened: Closer[],
): Promise<{ transport: DaemonTransport; nats: NatsLink | undefined }> {
  const { host, port, advertiseHost } = o.listen;
  if (o.config.transport === "nats") {
    const { memberNodeKeys, revokedSubjects, startNatsLink } = await import("./nats-link.ts");
    const revokedAtStart = revokedSubjects(o.revocations);
    const nats = await startNatsLink({
      dataDir: o.config.dataDir,
      identity: o.identity,
      meshId: o.mesh.meshId,
      mayServe: o.self.ring === 0,
      listenHost: host === "*" ? "0.0.0.0" : host,
      listenPort: port,
      advertiseHost,
      state: o.state,
      // Certified, unrevoked nodes; before the node exists, the stored bundle decides.
      allowedKeys: () =>
        memberNodeKeys(o.certificates, (hex) => {
          const node = o.node();
          return node === undefined ? !revokedAtStart.has(hex) : node.trust.isTrusted(hex, Date.now());
        }),
      // A revoked seed's server is no longer routed to (nats-routes.ts).
      isRevoked: (hex) => o.node()?.trust.isRevoked(hex) ?? revokedAtStart.has(hex),
      natsUrl: o.config.natsUrl,
      natsCaFile: o.config.natsCaFile,
      maxFrameBytes: DAEMON_GOSSIP_FRAME_BYTES,
      log: o.log,
    });
    opened.push(() => nats.close()); // the connection, and a seed's nats-server
    return { transport: nats.transport, nats };
  }
  const { zeromq } = await import("../transport/zeromq.ts");
  const transport = await zeromq({
    identity: o.identity,
    // Certified, unrevoked members only; before the node exists, the stored bundle decides.
    authorize: (key) => {
      const node = o.node();
      return node === undefined
        ? o.certificates.has(keyHex(key))
        : node.trust.isTrusted(keyHex(key), Date.now());
    },
    advertiseHost,
  })({ listen: zeromqListen(host, port) });
  opened.push(() => transport.close());
  return { transport, nats: undefined };
}

/** An issuer's join endpoint (listen port + JOIN_PORT_OFFSET) and the token issuer behind it. */
export interface JoinEndpoint {
  readonly endpoint: ZeromqTransport;
  readonly tokens: TokenIssuer;
  readonly serveJoins: typeof import("./join.ts").serveJoins;
}

/** Open the join endpoint of an issuer; answering on it starts once the daemon exists. */
export async function openJoinEndpoint(
  identity: Identity,
  listen: ListenParts,
  store: NodeStore,
  opened: Closer[],
): Promise<JoinEndpoint> {
  const { zeromq } = await import("../transport/zeromq.ts");
  const { serveJoins } = await import("./join.ts");
  const { host, port, advertiseHost } = listen;
  const endpoint = await zeromq({ identity, authorize: () => true, advertiseHost })({
    listen: zeromqListen(host, port === 0 ? 0 : port + JOIN_PORT_OFFSET),
  });
  opened.push(() => endpoint.close());
  const tokens = new TokenIssuer({
    store: store.tokens,
    issuerKey: identity.publicKey,
    endpoints: [endpoint.address],
    sealKey: deriveTokenSealKey(identity.secretKey),
  });
  return { endpoint, tokens, serveJoins };
}

/** The first non-internal IPv4 address, else loopback: what to advertise when listening on all. */
function primaryAddress(): string {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  }
  return "127.0.0.1";
}
