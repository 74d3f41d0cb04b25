/**
 * What a node keeps about its mesh, in the `trust` and `members` sublevels of its store: the root
 * key, its own certificate and chain, every certificate and revocation it has checked (the trust
 * bundle it hands to joiners), and the members it last knew. Written by `ringd init` and `ringd
 * join`, updated by the running daemon, read at every start so that a restart needs no token.
 *
 * Envelopes are stored as base64 of the exact signed bytes, never re-encoded.
 */
import * as v from "valibot";
import {
  type Certificate,
  decodeCertificate,
  decodeEnvelope,
  decodeRevocation,
  fingerprint,
  keyFromHex,
  keyHex,
  type Ring,
} from "../../protocol/index.ts";
import type { NodeStore, StoreOp } from "../store/store.ts";

/** The root key and mesh id a node belongs to. */
export interface MeshIdentity {
  readonly rootKey: Uint8Array;
  /** The root key's fingerprint. */
  readonly meshId: string;
}

/** A node's own standing: its certificate and the chain above it, root-most first. */
export interface SelfStanding {
  readonly ring: Ring;
  readonly certificate: Uint8Array;
  readonly chain: readonly Uint8Array[];
}

/**
 * Where a NATS node reaches its mesh's nats-server: the URL and the sha256 of the server's
 * certificate, both from the issuer's signed JoinResponse, and the certificate itself once fetched
 * and checked against that digest.
 */
export interface StoredNatsLink {
  readonly url: string;
  /** Lowercase hex sha256 of the certificate's DER bytes. */
  readonly caSha256: string;
  /** The certificate (PEM), once fetched and found to match caSha256. */
  readonly caPem?: string;
}

/** A member as last seen. */
export interface KnownMember {
  readonly id: string;
  readonly addr: string;
  readonly incarnation: number;
}

/** Members of the children's network (child-network.ts) are kept beside the others, under this prefix. */
const CHILD_MEMBER_PREFIX = "child:";
const hex64 = v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/));
const b64 = v.pipe(v.string(), v.maxLength(200_000), v.base64());
const rootSchema = v.strictObject({ rootKey: hex64, meshId: v.string() });
const selfSchema = v.strictObject({
  ring: v.picklist([0, 1, 2]),
  certificate: b64,
  chain: v.pipe(v.array(b64), v.maxLength(8)),
});
const envelopeSchema = v.strictObject({ envelope: b64 });
const ringSecretSchema = v.strictObject({ secret: v.pipe(v.string(), v.base64(), v.length(44)) });
const memberSchema = v.strictObject({
  addr: v.pipe(v.string(), v.maxLength(1_024)),
  incarnation: v.pipe(v.number(), v.integer(), v.minValue(0)),
});

const natsLinkSchema = v.strictObject({
  url: v.pipe(v.string(), v.maxLength(1_024)),
  caSha256: hex64,
  caPem: v.optional(v.pipe(v.string(), v.maxLength(16_384))),
});

const toB64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64");
const fromB64 = (text: string) => new Uint8Array(Buffer.from(text, "base64"));

/** The node has not been initialised or joined: there is no mesh state in its store. */
export class NotInitializedError extends Error {
  override readonly name = "NotInitializedError";
}

/** Typed access to the mesh state in a NodeStore. */
export class MeshState {
  constructor(readonly store: NodeStore) {}

  /** The mesh this node belongs to, or undefined before init/join. */
  async mesh(): Promise<MeshIdentity | undefined> {
    const r = await this.store.getJson("trust", "root", rootSchema);
    return r === undefined ? undefined : { rootKey: keyFromHex(r.rootKey), meshId: r.meshId };
  }

  /** This node's certificate and chain, or undefined before init/join. */
  async self(): Promise<SelfStanding | undefined> {
    const s = await this.store.getJson("trust", "self", selfSchema);
    if (s === undefined) return undefined;
    return { ring: s.ring as Ring, certificate: fromB64(s.certificate), chain: s.chain.map(fromB64) };
  }

  /** The secret that seals this node's network's frames, or undefined (state from before sealing). */
  async ringSecret(): Promise<Uint8Array | undefined> {
    const r = await this.store.getJson("trust", "ring-secret", ringSecretSchema);
    return r === undefined ? undefined : fromB64(r.secret);
  }

  /** The secret of the children's network this node hosts (child-network.ts), once made. */
  async childRingSecret(): Promise<Uint8Array | undefined> {
    const r = await this.store.getJson("trust", "child-ring-secret", ringSecretSchema);
    return r === undefined ? undefined : fromB64(r.secret);
  }

  /** Keep the children's network secret. */
  async putChildRingSecret(secret: Uint8Array): Promise<void> {
    await this.store.batch([
      { type: "put", sublevel: "trust", key: "child-ring-secret", value: { secret: toB64(secret) } },
    ]);
  }

  /** Both, or NotInitializedError naming the fix. */
  async require(dataDir: string): Promise<{ mesh: MeshIdentity; self: SelfStanding }> {
    const [mesh, self] = await Promise.all([this.mesh(), this.self()]);
    if (mesh === undefined || self === undefined)
      throw new NotInitializedError(
        `${dataDir} holds no mesh: run \`ringd init --ring 0 --data ${dataDir}\` for a seed, ` +
          `or \`ringd join TOKEN --data ${dataDir}\` to join an existing mesh`,
      );
    return { mesh, self };
  }

  /**
   * Record membership of a mesh in one batch: the root, this node's standing, every certificate of
   * its chain and of the bundle, the revocations, the members to contact first, and (for NATS) where
   * the mesh's nats-server is.
   */
  async establish(
    rootKey: Uint8Array,
    self: SelfStanding,
    bundle: readonly Uint8Array[],
    revocations: readonly Uint8Array[],
    members: readonly KnownMember[],
    natsLink?: StoredNatsLink,
    ringSecret?: Uint8Array,
  ): Promise<void> {
    const ops: StoreOp[] = [
      {
        type: "put",
        sublevel: "trust",
        key: "root",
        value: { rootKey: keyHex(rootKey), meshId: fingerprint(rootKey) },
      },
      {
        type: "put",
        sublevel: "trust",
        key: "self",
        value: { ring: self.ring, certificate: toB64(self.certificate), chain: self.chain.map(toB64) },
      },
    ];
    if (ringSecret !== undefined)
      ops.push({ type: "put", sublevel: "trust", key: "ring-secret", value: { secret: toB64(ringSecret) } });
    for (const env of [...self.chain, self.certificate, ...bundle]) ops.push(certificateOp(env));
    for (const env of revocations) ops.push(revocationOp(env));
    for (const m of members) ops.push(memberOp(m));
    if (natsLink !== undefined) ops.push(natsLinkOp(natsLink));
    await this.store.batch(ops);
  }

  /** Where this node reaches the mesh's nats-server, or undefined (a seed, or a ZeroMQ join). */
  async natsLink(): Promise<StoredNatsLink | undefined> {
    const link = await this.store.getJson("trust", "nats", natsLinkSchema);
    if (link === undefined) return undefined;
    return link.caPem === undefined
      ? { url: link.url, caSha256: link.caSha256 }
      : { url: link.url, caSha256: link.caSha256, caPem: link.caPem };
  }

  /** Remember (or update) where this node reaches the mesh's nats-server. */
  async putNatsLink(link: StoredNatsLink): Promise<void> {
    await this.store.batch([natsLinkOp(link)]);
  }

  /** Remember a checked certificate (keyed by subject; a newer serial replaces an older one). */
  async putCertificate(envelope: Uint8Array): Promise<void> {
    await this.store.batch([certificateOp(envelope)]);
  }

  /** Remember a checked revocation. */
  async putRevocation(envelope: Uint8Array): Promise<void> {
    await this.store.batch([revocationOp(envelope)]);
  }

  /** Every certificate held, subject hex → envelope bytes. */
  async certificates(): Promise<Map<string, Uint8Array>> {
    const rows = await this.store.listJson("trust", "cert:", envelopeSchema);
    return new Map(rows.map(([key, value]) => [key.slice("cert:".length), fromB64(value.envelope)]));
  }

  /** Every revocation held, as envelope bytes. */
  async revocations(): Promise<Uint8Array[]> {
    const rows = await this.store.listJson("trust", "revocation:", envelopeSchema);
    return rows.map(([, value]) => fromB64(value.envelope));
  }

  /** Remember where members are (a batch for many). */
  async putMembers(members: readonly KnownMember[]): Promise<void> {
    if (members.length > 0) await this.store.batch(members.map((m) => memberOp(m)));
  }

  /** The members last known. */
  async members(): Promise<KnownMember[]> {
    const rows = await this.store.listJson("members", "", memberSchema);
    return rows
      .filter(([id]) => !id.startsWith(CHILD_MEMBER_PREFIX))
      .map(([id, m]) => ({ id, addr: m.addr, incarnation: m.incarnation }));
  }

  /** Remember where the members of the children's network this node hosts are. */
  async putChildMembers(members: readonly KnownMember[]): Promise<void> {
    if (members.length > 0) await this.store.batch(members.map((m) => memberOp(m, CHILD_MEMBER_PREFIX)));
  }

  /** The members of the children's network last known. */
  async childMembers(): Promise<KnownMember[]> {
    const rows = await this.store.listJson("members", CHILD_MEMBER_PREFIX, memberSchema);
    return rows.map(([key, m]) => ({
      id: key.slice(CHILD_MEMBER_PREFIX.length),
      addr: m.addr,
      incarnation: m.incarnation,
    }));
  }
}

function certificateOp(envelope: Uint8Array): StoreOp {
  const cert: Certificate = decodeCertificate(decodeEnvelope(envelope));
  return {
    type: "put",
    sublevel: "trust",
    key: `cert:${keyHex(cert.subject)}`,
    value: { envelope: toB64(envelope) },
  };
}

function revocationOp(envelope: Uint8Array): StoreOp {
  const subject = keyHex(decodeRevocation(decodeEnvelope(envelope)).subject);
  return {
    type: "put",
    sublevel: "trust",
    key: `revocation:${subject}`,
    value: { envelope: toB64(envelope) },
  };
}

function natsLinkOp(link: StoredNatsLink): StoreOp {
  return { type: "put", sublevel: "trust", key: "nats", value: { ...link } };
}

function memberOp(m: KnownMember, prefix = ""): StoreOp {
  return {
    type: "put",
    sublevel: "members",
    key: `${prefix}${m.id}`,
    value: { addr: m.addr, incarnation: m.incarnation },
  };
}
