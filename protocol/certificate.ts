/**
 * Certificates (Announce envelopes) and the narrowing rules of a chain of them.
 *
 * Who may issue what (checkIssuance):
 * - The root key issues ring-0 certificates with any roles, compartment, tiers and validity.
 *   The root may also certify itself (the anchor: subject = issuer = root, ring 0); any other
 *   self-signed certificate is refused.
 * - Node issuance (the "ring step"): a certificate holding role "issuer" at ring N issues ring N+1
 *   certificates whose roles are within {node, issuer}. "node" may be granted even if the issuer
 *   lacks it (every ring-N+1 machine is a node); "issuer" only if the issuer holds it (it does, by
 *   the rule above) and never at ring 2, which has no child ring.
 * - Operator issuance: a ring-0 certificate holding role "admin" issues ring-0 certificates whose
 *   roles are within {operator, viewer, admin}. Node roles and operator roles never mix in one
 *   certificate issued below the root.
 * - Always: the child's compartment starts with the issuer's (equal or nested under it); if the
 *   issuer has tiers, the child's tiers are a subset of them (an issuer with no tiers may grant
 *   any); the child's validity window lies inside the issuer's; now lies in the child's window.
 */
import { decodeEnvelope, sealEnvelope, verifyEnvelope } from "./envelope.ts";
import {
  BadSignatureError,
  CertificateExpiredError,
  CertificateNotYetValidError,
  CertificateRevokedError,
  EncodeError,
  IssuerMismatchError,
  IssuerNotAuthorizedError,
  IssuerRevokedError,
  MalformedChainError,
  SelfSignedError,
  WidensRightsError,
  WrongRingError,
  WrongTypeError,
} from "./errors.ts";
import { bytesEqual, type Identity, keyHex } from "./keys.ts";
import { MAX_CHAIN_LENGTH } from "./limits.ts";
import { decodePayload, encodePayload } from "./messages.ts";
import { type Certificate, type Envelope, MessageType, type PublicKey, type Role } from "./types.ts";

/** Roles a ring-N issuer may grant to ring N+1 node keys. */
export const NODE_ROLES: readonly Role[] = ["node", "issuer"];
/** Roles a ring-0 admin may grant to operator keys. */
export const OPERATOR_ROLES: readonly Role[] = ["operator", "viewer", "admin"];

/** Sign `cert` as an Announce envelope by `issuer`; cert.issuer must be issuer.publicKey. */
export function issueCertificate(issuer: Identity, cert: Certificate): Uint8Array {
  if (!bytesEqual(cert.issuer, issuer.publicKey)) {
    throw new EncodeError("certificate issuer field must equal the signing key");
  }
  return sealEnvelope(issuer, MessageType.Announce, encodePayload(MessageType.Announce, cert));
}

/**
 * Decode the certificate in an Announce envelope (does NOT verify the signature). Throws
 * WrongTypeError for another type, a DecodeError for a bad payload, and IssuerMismatchError
 * when the envelope's sender is not the certificate's issuer.
 */
export function decodeCertificate(env: Envelope): Certificate {
  if (env.type !== MessageType.Announce) throw new WrongTypeError(`expected Announce, got type ${env.type}`);
  const cert = decodePayload(MessageType.Announce, env.payload);
  if (!bytesEqual(env.sender, cert.issuer)) {
    throw new IssuerMismatchError("certificate issuer is not the envelope's signer");
  }
  return cert;
}

function hasRole(cert: Certificate, role: Role): boolean {
  return cert.roles.includes(role);
}

function checkTime(child: Certificate, nowMs: number): void {
  if (nowMs < child.notBeforeMs)
    throw new CertificateNotYetValidError(`not valid before ${child.notBeforeMs}`);
  if (nowMs >= child.expiresMs) throw new CertificateExpiredError(`expired at ${child.expiresMs}`);
}

/**
 * Check one chain step: may `issuerCert` (or the root key itself) issue `child` at `nowMs`?
 * Returns nothing; throws the precise CertificateError subclass (see the rules at the top).
 * Does not verify signatures and knows nothing of revocations (see verifyChain).
 */
export function checkIssuance(
  issuerCert: Certificate | "root",
  child: Certificate,
  rootKey: PublicKey,
  nowMs: number,
): void {
  const fromRoot = issuerCert === "root" || bytesEqual(issuerCert.subject, rootKey);
  const issuerKey = issuerCert === "root" ? rootKey : issuerCert.subject;
  if (!bytesEqual(child.issuer, issuerKey)) {
    throw new IssuerMismatchError("child certificate names another issuer");
  }
  if (bytesEqual(child.subject, child.issuer) && !bytesEqual(child.subject, rootKey)) {
    throw new SelfSignedError(`self-signed certificate for ${keyHex(child.subject).slice(0, 16)}`);
  }
  checkTime(child, nowMs);
  if (fromRoot) {
    if (child.ring !== 0) throw new WrongRingError(`the root issues ring 0 only, not ring ${child.ring}`);
    return;
  }
  const parent = issuerCert as Certificate;
  const operatorKind = child.roles.some((r) => OPERATOR_ROLES.includes(r));
  const nodeKind = child.roles.some((r) => NODE_ROLES.includes(r));
  if (operatorKind && nodeKind)
    throw new WidensRightsError("node and operator roles mixed in one certificate");
  if (operatorKind) {
    if (parent.ring !== 0 || !hasRole(parent, "admin")) {
      throw new IssuerNotAuthorizedError("only a ring-0 admin issues operator certificates");
    }
    if (child.ring !== 0)
      throw new WrongRingError(`operator certificates are ring 0, not ring ${child.ring}`);
  } else {
    if (!hasRole(parent, "issuer")) throw new IssuerNotAuthorizedError("issuer lacks the issuer role");
    if (child.ring !== parent.ring + 1) {
      throw new WrongRingError(
        `a ring-${parent.ring} issuer certifies ring ${parent.ring + 1}, not ring ${child.ring}`,
      );
    }
    if (hasRole(child, "issuer") && child.ring === 2)
      throw new WidensRightsError("ring 2 has no child ring to issue");
  }
  // Operator roles come with the admin step; node roles need the issuer to hold them, except "node".
  for (const role of child.roles) {
    if (!operatorKind && role !== "node" && !hasRole(parent, role)) {
      throw new WidensRightsError(`issuer cannot grant role ${role}`);
    }
  }
  if (
    child.compartment.length < parent.compartment.length ||
    parent.compartment.some((part, i) => child.compartment[i] !== part)
  ) {
    throw new WidensRightsError("compartment is not equal to or nested under the issuer's");
  }
  if (parent.tiers.length > 0 && child.tiers.some((t) => !parent.tiers.includes(t))) {
    throw new WidensRightsError("tiers are not a subset of the issuer's");
  }
  if (child.notBeforeMs < parent.notBeforeMs || child.expiresMs > parent.expiresMs) {
    throw new WidensRightsError("validity window is not inside the issuer's");
  }
}

/** Options for verifyChain. */
export interface VerifyChainOptions {
  /** True when `key` has been revoked; an issuer or leaf so marked refuses the chain. */
  readonly isRevoked?: (key: PublicKey) => boolean;
}

/**
 * Verify a whole chain, root-most first (an optional root self-certificate, then ring 0, ...),
 * and return the leaf certificate. Each envelope must be an Announce that strictly verifies
 * (BadSignatureError), and each step must pass checkIssuance at `nowMs`. Envelopes may be given
 * as bytes or decoded.
 */
export function verifyChain(
  rootKey: PublicKey,
  chain: readonly (Envelope | Uint8Array)[],
  nowMs: number,
  options: VerifyChainOptions = {},
): Certificate {
  if (chain.length === 0 || chain.length > MAX_CHAIN_LENGTH) {
    throw new MalformedChainError(`chain of ${chain.length} certificates (1..${MAX_CHAIN_LENGTH})`);
  }
  let parent: Certificate | "root" = "root";
  let leaf: Certificate | undefined;
  for (const [i, item] of chain.entries()) {
    const env = item instanceof Uint8Array ? decodeEnvelope(item) : item;
    const cert = decodeCertificate(env);
    if (!verifyEnvelope(env)) throw new BadSignatureError(`certificate ${i} of the chain does not verify`);
    if (options.isRevoked?.(cert.issuer) === true && !bytesEqual(cert.issuer, rootKey)) {
      throw new IssuerRevokedError(`issuer of certificate ${i} is revoked`);
    }
    if (options.isRevoked?.(cert.subject) === true) {
      throw new CertificateRevokedError(`subject of certificate ${i} is revoked`);
    }
    checkIssuance(parent, cert, rootKey, nowMs);
    parent = cert;
    leaf = cert;
  }
  return leaf!;
}
