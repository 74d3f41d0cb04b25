/**
 * The trust store of one node: the root key, the certificates it has checked, and revocations.
 *
 * A key is trusted only through a chain of certificates back to the root, each link checked by
 * `checkIssuance` (rights only narrow). Trust is evaluated at use: a certificate that expires, or any
 * link of whose chain is revoked, stops being trusted at once, without a rebuild.
 *
 * Certificates a node has received but not yet needed (the members in its trust bundle) sit in a
 * `CertificateSource` as unverified bytes; the first message from such a key pays for the check, and
 * a failed check is remembered, so a node never spends a signature check twice on the same bad
 * certificate. A mesh of thousands therefore costs each node only the keys it actually hears from.
 */
import {
  bytesEqual,
  type Certificate,
  CertificateError,
  checkIssuance,
  decodeCertificate,
  decodeEnvelope,
  decodeRevocation,
  EnjinError,
  type Envelope,
  keyHex,
  MessageType,
  type Revocation,
  type Role,
  verifyEnvelope,
} from "../protocol/index.ts";

/** Unverified certificate envelopes by subject key hex (a trust bundle, or state on disk). */
export type CertificateSource = (subjectHex: string) => Uint8Array | undefined;

/** Sender keys whose hex names TrustStore.hexOf keeps; past this it starts over. */
export const HEX_NAME_CACHE_ENTRIES = 4_096;

/** The deepest chain the store follows (root → ring 0 → ring 1 → ring 2 → operator slack). */
export const MAX_CHAIN_DEPTH = 5;

/** Why a key is not trusted now. Stable strings, used as counter labels. */
export type TrustRefusal =
  | "unknown-sender"
  | "revoked-sender"
  | "expired-sender"
  | "not-yet-valid-sender"
  | "untrusted-issuer"
  | "bad-certificate"
  | "chain-too-deep";

/** The root key's own standing: it may issue ring 0 certificates and revoke anything. */
export const ROOT = "root" as const;

/** A trusted key: its certificate, or ROOT for the root key itself. */
export type Standing = Certificate | typeof ROOT;

/** A revocation refused: the revoker has no authority over the subject. */
export class RevocationNotAuthorizedError extends EnjinError {
  override readonly reason = "revocation-not-authorized";
}

/** The envelope given to the store is not of the expected type. */
export class WrongEnvelopeTypeError extends EnjinError {
  override readonly reason = "wrong-envelope-type";
}

export class TrustStore {
  readonly rootKey: Uint8Array;
  readonly rootHex: string;
  readonly #source: CertificateSource | undefined;
  readonly #verify: (env: Envelope) => boolean;
  /** Certificates whose signature and issuance were checked, by subject hex. */
  readonly #checked = new Map<string, Certificate>();
  /** Subjects whose certificate from the source failed its check (so it is not checked again). */
  readonly #badSource = new Set<string>();
  readonly #revoked = new Map<string, Revocation>();
  /** Subjects whose source certificate is being checked now (breaks issuer cycles). */
  readonly #loading = new Set<string>();
  /** Hex names of recent sender keys, by their first four bytes (see hexOf). */
  readonly #hexNames = new Map<number, { key: Uint8Array; hex: string }>();
  /**
   * Each checked certificate's issuer as hex: the chain walk of every received envelope looks it up,
   * and formatting the key afresh each time was a tenth of ingest's work outside the signature check.
   */
  readonly #issuerHex = new WeakMap<Certificate, string>();

  /**
   * `source` holds unverified certificates checked on first use; `verify` replaces the signature
   * check (default `verifyEnvelope`; simulations share a memo across their nodes).
   */
  constructor(
    rootKey: Uint8Array,
    options: { source?: CertificateSource; verify?: (env: Envelope) => boolean } = {},
  ) {
    this.rootKey = rootKey;
    this.rootHex = keyHex(rootKey);
    this.#source = options.source;
    this.#verify = options.verify ?? verifyEnvelope;
  }

  /**
   * The hex name of a sender's key, as `keyHex` gives it, from a small cache: a node hears the same
   * few hundred keys over and over, and formatting 32 bytes as hex was ~10% of ingest's work outside
   * the signature check. A cache slot holds the last key seen with those first four bytes; a
   * different key there is compared byte for byte and simply replaces it.
   */
  hexOf(key: Uint8Array): string {
    const slot = ((key[0]! << 24) | (key[1]! << 16) | (key[2]! << 8) | key[3]!) >>> 0;
    const held = this.#hexNames.get(slot);
    if (held !== undefined && bytesEqual(held.key, key)) return held.hex;
    const hex = keyHex(key);
    if (held === undefined && this.#hexNames.size >= HEX_NAME_CACHE_ENTRIES) this.#hexNames.clear();
    this.#hexNames.set(slot, { key: key.slice(), hex });
    return hex;
  }

  /**
   * The standing of `subjectHex` at `nowMs`, or why it is not trusted. Walks the chain to the root,
   * so revoking or expiring any link takes effect on the next message.
   */
  standing(subjectHex: string, nowMs: number): Standing | TrustRefusal {
    return this.#standing(subjectHex, nowMs, 0);
  }

  /** True when `subjectHex` is trusted at `nowMs`. */
  isTrusted(subjectHex: string, nowMs: number): boolean {
    const standing = this.standing(subjectHex, nowMs);
    return standing === ROOT || typeof standing !== "string";
  }

  /** True when a revocation names `subjectHex`. */
  isRevoked(subjectHex: string): boolean {
    return this.#revoked.has(subjectHex);
  }

  /** The checked certificate of `subjectHex`, trusted or not (for display). */
  certificate(subjectHex: string): Certificate | undefined {
    return this.#checked.get(subjectHex);
  }

  /** Every checked certificate (for trust bundles and `ringctl nodes`). */
  certificates(): Certificate[] {
    return [...this.#checked.values()];
  }

  /** Every revocation held (for trust bundles and anti-entropy). */
  revocations(): Revocation[] {
    return [...this.#revoked.values()];
  }

  /**
   * Add a certificate from raw envelope bytes: decode, verify the issuer's signature, and check the
   * issuance against the issuer's own standing. Throws an `EnjinError` subclass; stores nothing then.
   */
  addCertificate(bytes: Uint8Array, nowMs: number): Certificate {
    const env = decodeEnvelope(bytes);
    if (!this.#verify(env)) throw new CertificateError("certificate signature does not verify");
    return this.addVerifiedCertificate(env, nowMs);
  }

  /** Like `addCertificate` for an envelope whose signature the caller has already verified. */
  addVerifiedCertificate(env: Envelope, nowMs: number): Certificate {
    if (env.type !== MessageType.Announce) {
      throw new WrongEnvelopeTypeError(`expected an announce envelope, got type ${env.type}`);
    }
    const cert = decodeCertificate(env);
    const issuerHex = keyHex(cert.issuer);
    const issuer = this.#standing(issuerHex, nowMs, 1);
    if (typeof issuer === "string" && issuer !== ROOT) {
      throw new CertificateError(`issuer ${issuerHex.slice(0, 16)} is not trusted: ${issuer}`);
    }
    checkIssuance(issuer, cert, this.rootKey, nowMs);
    const subjectHex = keyHex(cert.subject);
    if (this.#revoked.has(subjectHex)) {
      throw new CertificateError(`subject ${subjectHex.slice(0, 16)} is revoked`);
    }
    const held = this.#checked.get(subjectHex);
    // Keep the newest serial: an old certificate replayed must not replace a newer one.
    if (held === undefined || cert.serial >= held.serial) this.#checked.set(subjectHex, cert);
    this.#badSource.delete(subjectHex);
    return cert;
  }

  /** Add a revocation from raw envelope bytes (decoded, verified, authorized). */
  addRevocation(bytes: Uint8Array, nowMs: number): Revocation {
    const env = decodeEnvelope(bytes);
    if (!this.#verify(env)) throw new RevocationNotAuthorizedError("revocation signature does not verify");
    return this.addVerifiedRevocation(env, nowMs);
  }

  /**
   * Add a revocation whose signature the caller verified. The revoker must be the root, an admin,
   * or a link of the subject's own chain (its issuer or an ancestor), trusted at `nowMs`.
   */
  addVerifiedRevocation(env: Envelope, nowMs: number): Revocation {
    if (env.type !== MessageType.Revoke) {
      throw new WrongEnvelopeTypeError(`expected a revoke envelope, got type ${env.type}`);
    }
    const rev = decodeRevocation(env);
    const revokerHex = keyHex(rev.issuer);
    const subjectHex = keyHex(rev.subject);
    if (!this.#mayRevoke(revokerHex, subjectHex, nowMs)) {
      throw new RevocationNotAuthorizedError(
        `${revokerHex.slice(0, 16)} has no authority to revoke ${subjectHex.slice(0, 16)}`,
      );
    }
    const held = this.#revoked.get(subjectHex);
    if (held === undefined || rev.epoch > held.epoch) this.#revoked.set(subjectHex, rev);
    return rev;
  }

  #mayRevoke(revokerHex: string, subjectHex: string, nowMs: number): boolean {
    if (subjectHex === this.rootHex) return false;
    const revoker = this.standing(revokerHex, nowMs);
    if (revoker === ROOT) return true;
    if (typeof revoker === "string") return false;
    if (hasRole(revoker, "admin")) return true;
    // An ancestor of the subject: follow the subject's issuers upward.
    let hex = subjectHex;
    for (let depth = 0; depth < MAX_CHAIN_DEPTH; depth++) {
      const cert = this.#checked.get(hex) ?? this.#fromSource(hex, nowMs, depth);
      if (cert === undefined || typeof cert === "string") return false;
      const issuerHex = keyHex(cert.issuer);
      if (issuerHex === revokerHex) return true;
      if (issuerHex === this.rootHex) return false;
      hex = issuerHex;
    }
    return false;
  }

  #standing(hex: string, nowMs: number, depth: number): Standing | TrustRefusal {
    if (hex === this.rootHex) return ROOT;
    if (depth >= MAX_CHAIN_DEPTH) return "chain-too-deep";
    if (this.#revoked.has(hex)) return "revoked-sender";
    const cert = this.#checked.get(hex) ?? this.#fromSource(hex, nowMs, depth);
    if (cert === undefined) return "unknown-sender";
    if (typeof cert === "string") return cert;
    if (nowMs < cert.notBeforeMs) return "not-yet-valid-sender";
    if (nowMs >= cert.expiresMs) return "expired-sender";
    const issuer = this.#standing(this.#issuerHexOf(cert), nowMs, depth + 1);
    if (issuer !== ROOT && typeof issuer === "string") return "untrusted-issuer";
    return cert;
  }

  #issuerHexOf(cert: Certificate): string {
    let hex = this.#issuerHex.get(cert);
    if (hex === undefined) {
      hex = keyHex(cert.issuer);
      this.#issuerHex.set(cert, hex);
    }
    return hex;
  }

  /** Check a certificate from the source on first use; remember failures. */
  #fromSource(hex: string, nowMs: number, depth: number): Certificate | TrustRefusal | undefined {
    if (this.#badSource.has(hex)) return "bad-certificate";
    if (this.#source === undefined) return undefined;
    const bytes = this.#source(hex);
    if (bytes === undefined) return undefined;
    if (depth >= MAX_CHAIN_DEPTH) return "chain-too-deep";
    if (this.#loading.has(hex)) return "bad-certificate";
    this.#loading.add(hex);
    try {
      const cert = this.addCertificate(bytes, nowMs);
      if (keyHex(cert.subject) !== hex) {
        this.#checked.delete(keyHex(cert.subject));
        this.#badSource.add(hex);
        return "bad-certificate";
      }
      return cert;
    } catch (err) {
      if (!(err instanceof EnjinError)) throw err;
      this.#badSource.add(hex);
      return "bad-certificate";
    } finally {
      this.#loading.delete(hex);
    }
  }
}

/** True when `cert` grants `role`. */
export function hasRole(cert: Certificate, role: Role): boolean {
  return cert.roles.includes(role);
}
