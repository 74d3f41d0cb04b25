/**
 * The children's network. DESIGN.md: a node of ring N talks on ring N's network and on its parent's.
 * A ring-N issuer (N ≥ 1) therefore hosts, besides its seat on its parent's network, the network of
 * the ring-(N+1) nodes it certifies: a second MeshNode with the same key, on its own ZeroMQ endpoint
 * (the listen port + CHILD_NETWORK_PORT_OFFSET, ringd-ports.ts), sealed with a secret of its own, made here on first
 * start and kept in the store, and handed (sealed to each joiner's key) to the nodes it admits.
 *
 * One network per issuer, not one per ring mesh-wide: the apps of one ring-1 machine meet their own
 * agent and each other, never another customer's apps. ZeroMQ whatever the parent's transport: it
 * needs no server, and a ring-1 node runs none.
 *
 * The daemon bridges the two networks (daemon.ts): certificates and revocations heard on either are
 * relayed into the other, unchanged; an operator's command heard on either is relayed into the
 * other; results from below go up the parent network's command tree. Nothing is re-signed.
 */
import { randomBytes } from "node:crypto";
import { keyHex, type Ring } from "../../protocol/index.ts";
import { seededRng } from "../../rings/index.ts";
import type { Clock } from "../clock.ts";
import { MeshNode } from "../mesh-node.ts";
import { RING_SECRET_BYTES, sealed } from "../transport/sealed.ts";
import type { ZeromqTransport } from "../transport/zeromq.ts";
import type { KnownMember, MeshIdentity, MeshState } from "./mesh-state.ts";
import { CHILD_NETWORK_PORT_OFFSET } from "./ringd-ports.ts";

/** An issuer's network for the nodes it certifies. */
export interface ChildNetwork {
  readonly node: MeshNode;
  readonly transport: ZeromqTransport;
  /** The secret sealing its frames, handed sealed to joiners. */
  readonly secret: Uint8Array;
  /** Where its members reach this node. */
  readonly address: string;
  /** The members to persist (alive or suspect, not this node). */
  members(): KnownMember[];
}

/** What openChildNetwork needs from the daemon. */
export interface ChildNetworkOptions {
  readonly identity: import("../../protocol/index.ts").Identity;
  readonly mesh: MeshIdentity;
  /** This node's ring: the children's network is ring `ring`'s (its members: this node's ring + 1). */
  readonly ring: Ring;
  readonly state: MeshState;
  readonly certificates: (hex: string) => Uint8Array | undefined;
  /** Whether a key may connect: certified and not revoked. */
  readonly authorize: (ed25519PublicKey: Uint8Array) => boolean;
  readonly host: string;
  /** The node's own listen port (0: any free port for the children's network too). */
  readonly port: number;
  readonly advertiseHost: string;
  readonly clock: Clock;
  readonly maxFrameBytes: number;
}

/** Open the children's network of an issuer of ring ≥ 1, with the members it last knew. */
export async function openChildNetwork(opts: ChildNetworkOptions): Promise<ChildNetwork> {
  const secret = await childSecret(opts.state);
  const { zeromq } = await import("../transport/zeromq.ts");
  const port = opts.port === 0 ? 0 : opts.port + CHILD_NETWORK_PORT_OFFSET;
  const transport = await zeromq({
    identity: opts.identity,
    authorize: opts.authorize,
    advertiseHost: opts.advertiseHost,
  })({ listen: `tcp://${opts.host === "0.0.0.0" ? "*" : opts.host}:${port}` });
  const node = new MeshNode({
    identity: opts.identity,
    ring: opts.ring,
    rootKey: opts.mesh.rootKey,
    certificates: opts.certificates,
    transport: sealed(transport, secret),
    clock: opts.clock,
    rng: seededRng((Math.random() * 2 ** 31) | 0),
    gossip: { maxFrameBytes: opts.maxFrameBytes },
  });
  const self = keyHex(opts.identity.publicKey);
  return {
    node,
    transport,
    secret,
    address: transport.address,
    members: () =>
      node.membership
        .members()
        .filter((m) => m.state !== "dead" && m.id !== self)
        .map((m) => ({ id: m.id, addr: m.addr, incarnation: m.incarnation })),
  };
}

/** The children's network secret: made on first use, then kept in the store. */
async function childSecret(state: MeshState): Promise<Uint8Array> {
  const kept = await state.childRingSecret();
  if (kept !== undefined) return kept;
  const made = new Uint8Array(randomBytes(RING_SECRET_BYTES));
  await state.putChildRingSecret(made);
  return made;
}
