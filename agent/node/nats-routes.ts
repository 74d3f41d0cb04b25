/**
 * The routes between ring-0 seeds' nats-servers: what a seed tells the others about its server,
 * and the book of peer servers it routes to and trusts.
 *
 * A seed's server verifies every route with TLS against a CA file that holds only certificates of
 * servers run by certified ring-0 nodes. Those certificates travel in data signed by a key the
 * mesh already trusts:
 * - the issuer's JoinResponse names its server's certificate by sha256 (`nats-ca-sha256:`), so a
 *   seed that joins trusts its issuer's server from its first start (see nats-link.ts);
 * - every seed gossips a **route announcement** — an application broadcast on topic
 *   NATS_ROUTE_TOPIC, signed by its node key — naming its route URL and carrying its server's
 *   certificate. A receiver takes it only from a trusted, unrevoked ring-0 node.
 *
 * Announcement bytes: UTF-8 JSON `{"v":1,"route":"nats-route://host:port","cert":"<base64 DER>"}`,
 * at most MAX_PUBLISH_BYTES (an EC P-256 certificate is about 430 bytes of DER, a route URL under
 * 60). Unknown versions and anything else are refused with BadRouteAnnouncementError.
 *
 * The book (`<dataDir>/nats/route-peers.json`, 0600) keeps each peer's key, route URL and
 * certificate, so a restarted seed routes to its peers before it hears from anyone. A revoked
 * peer is dropped and its certificate's digest remembered, so that no path (not even the join
 * pin) trusts that server again.
 */
import { createHash, X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import * as v from "valibot";
import { MAX_ADDR_BYTES } from "../../protocol/index.ts";
import { MAX_PUBLISH_BYTES } from "../mesh-node.ts";
import type { NatsRouteSet } from "../nats-server.ts";
import { writeFileAtomic } from "../nats-server-files.ts";

/** Topic of the broadcasts in which seeds announce their server's route URL and certificate. */
export const NATS_ROUTE_TOPIC = "enjin.nats-route";
/** The book of route peers, in the nats-server's data dir. */
export const NATS_ROUTE_PEERS_FILE = "route-peers.json";
/** Version of the announcement's JSON. */
export const NATS_ROUTE_ANNOUNCEMENT_VERSION = 1;
/** Largest certificate (DER) an announcement may carry. */
export const MAX_ROUTE_CERT_DER_BYTES = 680;

/** A route announcement's bytes are not a valid announcement. */
export class BadRouteAnnouncementError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The route book on disk cannot be read as one. */
export class BadRoutePeersFileError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** What a seed announces about its server. */
export interface RouteAnnouncement {
  /** `nats-route://host:port`, where other servers dial this one. */
  readonly routeUrl: string;
  /** The server's certificate (PEM). */
  readonly certPem: string;
}

/** A peer server in the book. */
export interface RoutePeer extends RouteAnnouncement {
  /** Hex of the ring-0 node key that announced it. */
  readonly key: string;
}

/** True for `nats-route://host:port` with a port in 1..65535 and nothing else. */
export function isRouteUrl(text: string): boolean {
  if (Buffer.byteLength(text) > MAX_ADDR_BYTES) return false;
  try {
    const url = new URL(text);
    const port = Number(url.port);
    return (
      url.protocol === "nats-route:" &&
      url.hostname !== "" &&
      Number.isInteger(port) &&
      port > 0 &&
      port < 65_536 &&
      url.pathname === "" &&
      url.search === "" &&
      url.hash === "" &&
      url.username === "" &&
      url.password === ""
    );
  } catch {
    return false;
  }
}

/** Lowercase hex sha256 of a PEM certificate's DER bytes. */
export function certificateSha256(pem: string): string {
  return createHash("sha256").update(new X509Certificate(pem).raw).digest("hex");
}

/** The announcement's bytes (throws BadRouteAnnouncementError when they would not fit a broadcast). */
export function encodeRouteAnnouncement(a: RouteAnnouncement): Uint8Array {
  if (!isRouteUrl(a.routeUrl)) throw new BadRouteAnnouncementError(`not a route URL: ${a.routeUrl}`);
  const der = new X509Certificate(a.certPem).raw;
  const bytes = new TextEncoder().encode(
    JSON.stringify({ v: NATS_ROUTE_ANNOUNCEMENT_VERSION, route: a.routeUrl, cert: der.toString("base64") }),
  );
  if (der.byteLength > MAX_ROUTE_CERT_DER_BYTES || bytes.byteLength > MAX_PUBLISH_BYTES)
    throw new BadRouteAnnouncementError(
      `the announcement takes ${bytes.byteLength} bytes (certificate ${der.byteLength}); at most ${MAX_PUBLISH_BYTES} (${MAX_ROUTE_CERT_DER_BYTES})`,
    );
  return bytes;
}

const announcementSchema = v.strictObject({
  v: v.literal(NATS_ROUTE_ANNOUNCEMENT_VERSION),
  route: v.pipe(v.string(), v.check(isRouteUrl)),
  cert: v.pipe(v.string(), v.base64(), v.maxLength(Math.ceil(MAX_ROUTE_CERT_DER_BYTES / 3) * 4)),
});

/** Read an announcement; BadRouteAnnouncementError says what is wrong with it. */
export function decodeRouteAnnouncement(bytes: Uint8Array): RouteAnnouncement {
  if (bytes.byteLength > MAX_PUBLISH_BYTES)
    throw new BadRouteAnnouncementError(`${bytes.byteLength} bytes; at most ${MAX_PUBLISH_BYTES}`);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (err) {
    throw new BadRouteAnnouncementError("not UTF-8 JSON", { cause: err });
  }
  const parsed = v.safeParse(announcementSchema, json);
  if (!parsed.success)
    throw new BadRouteAnnouncementError(`not a version-1 announcement: ${parsed.issues[0].message}`);
  let certPem: string;
  try {
    certPem = new X509Certificate(Buffer.from(parsed.output.cert, "base64")).toString();
  } catch (err) {
    throw new BadRouteAnnouncementError("the certificate is not X.509 DER", { cause: err });
  }
  return { routeUrl: parsed.output.route, certPem };
}

const hex64 = v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/));
const bookSchema = v.strictObject({
  peers: v.array(
    v.strictObject({
      key: hex64,
      routeUrl: v.pipe(v.string(), v.check(isRouteUrl)),
      certPem: v.pipe(v.string(), v.maxLength(4_096)),
    }),
  ),
  /** sha256 of the certificates of revoked peers' servers. */
  revokedCertSha256: v.array(hex64),
});

/**
 * The route peers of one seed's server (see the file comment). Not thread-safe in any sense but
 * JavaScript's: one book per server, changed from one event loop.
 */
export class RoutePeerBook {
  readonly #path: string;
  readonly #peers = new Map<string, RoutePeer>();
  readonly #revoked = new Set<string>();

  private constructor(path: string) {
    this.#path = path;
  }

  /** The book kept in `natsDataDir`, empty when there is none yet. */
  static async load(natsDataDir: string): Promise<RoutePeerBook> {
    const book = new RoutePeerBook(join(natsDataDir, NATS_ROUTE_PEERS_FILE));
    let text: string;
    try {
      text = await readFile(book.#path, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return book;
      throw new BadRoutePeersFileError(`cannot read ${book.#path}`, { cause: err });
    }
    let parsed: v.InferOutput<typeof bookSchema>;
    try {
      parsed = v.parse(bookSchema, JSON.parse(text));
      for (const p of parsed.peers) certificateSha256(p.certPem);
    } catch (err) {
      throw new BadRoutePeersFileError(`${book.#path} is not a route book; remove it to start afresh`, {
        cause: err,
      });
    }
    for (const p of parsed.peers) book.#peers.set(p.key, p);
    for (const d of parsed.revokedCertSha256) book.#revoked.add(d);
    return book;
  }

  /** The peers, by key. */
  peers(): RoutePeer[] {
    return [...this.#peers.values()].sort((a, b) => a.key.localeCompare(b.key));
  }

  /**
   * Take an announcement from the ring-0 node `key` (the caller checked its standing). Returns
   * whether the book changed; a certificate of a revoked peer is refused (false).
   */
  learn(key: string, a: RouteAnnouncement): boolean {
    if (this.#revoked.has(certificateSha256(a.certPem))) return false;
    const known = this.#peers.get(key);
    if (known !== undefined && known.routeUrl === a.routeUrl && known.certPem === a.certPem) return false;
    this.#peers.set(key, { key, routeUrl: a.routeUrl, certPem: a.certPem });
    return true;
  }

  /** Drop the peers whose key is revoked, remembering their certificates; whether any was dropped. */
  dropRevoked(isRevoked: (keyHex: string) => boolean): boolean {
    let changed = false;
    for (const [key, peer] of this.#peers) {
      if (!isRevoked(key)) continue;
      this.#peers.delete(key);
      this.#revoked.add(certificateSha256(peer.certPem));
      changed = true;
    }
    return changed;
  }

  /**
   * What the server routes to and trusts: every peer, plus `pinnedPem` (the join pin of the
   * issuer's server) unless a revoked peer's server presented it.
   */
  routeSet(pinnedPem?: string): NatsRouteSet {
    const peers = this.peers();
    const pems = peers.map((p) => p.certPem);
    if (
      pinnedPem !== undefined &&
      !this.#revoked.has(certificateSha256(pinnedPem)) &&
      !pems.includes(pinnedPem)
    )
      pems.push(pinnedPem);
    return { routes: [...new Set(peers.map((p) => p.routeUrl))].sort(), trustedPeerCertPems: pems };
  }

  /** Write the book (0600, atomically). */
  async save(): Promise<void> {
    const value: v.InferOutput<typeof bookSchema> = {
      peers: this.peers(),
      revokedCertSha256: [...this.#revoked].sort(),
    };
    await writeFileAtomic(this.#path, `${JSON.stringify(value, null, 2)}\n`);
  }
}
