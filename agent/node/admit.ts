/**
 * The issuer's half of a join after the token checked out: certify the joiner within the token's
 * scope and the issuer's own rights (a ring-N issuer certifies ring N+1 only; compartment nested
 * under its own; tiers within its own; validity inside its own), persist and gossip the
 * certificate, and put together the trust bundle for the answer.
 */
import {
  type Alive,
  decodeCertificate,
  decodeEnvelope,
  issueCertificate,
  type JoinResponse,
  keyFromHex,
  keyHex,
  MAX_BUNDLE_ENVELOPES,
  MAX_BUNDLE_MEMBERS,
  type Ring,
  type Role,
} from "../../protocol/index.ts";
import type { Daemon } from "./daemon.ts";
import { sealRingSecret } from "./ring-secret.ts";
import { CLOCK_SLACK_MS, SEED_CERTIFICATE_TTL_MS } from "./seed.ts";

/**
 * How long an admission on a NATS seed waits for its nats-server to take the joiner's key before it
 * answers anyway: a reload takes milliseconds on a quiet machine but seconds on a starved one, and
 * the joiner gives an attempt JOIN_ATTEMPT_TIMEOUT_MS (5 s). A joiner that connects before the
 * reload lands is refused and tries again (NATS_START_RETRY_MS) until it is admitted.
 */
export const NATS_ADMIT_WAIT_MS = 2_000;

/** How long a joined node's certificate is valid, at most (it never outlives its issuer's). */
export const MEMBER_CERTIFICATE_TTL_MS = 365 * 24 * 3_600_000;

/** A token's scope asks for what this issuer cannot grant. */
export class ScopeNotGrantableError extends Error {
  override readonly name = "ScopeNotGrantableError";
}

/** The roles a node of `ring` is certified with. */
export function rolesForRing(ring: Ring): Role[] {
  return ring === 2 ? ["node"] : ["node", "issuer"];
}

/** Throw ScopeNotGrantableError unless this daemon may certify `ring` nodes with these labels. */
export function checkGrantable(
  daemon: Pick<Daemon, "selfCert" | "root">,
  scope: { ring: Ring; tiers: readonly string[]; compartment: readonly string[] },
): void {
  const own = daemon.selfCert;
  if (scope.ring === 0) {
    // Only the root certifies ring 0: another seed joins where the mesh's root key is.
    if (daemon.root === undefined)
      throw new ScopeNotGrantableError(
        "only the root key certifies ring-0 nodes: mint ring-0 tokens on the seed that holds the mesh's root.key",
      );
    return;
  }
  if (!own.roles.includes("issuer"))
    throw new ScopeNotGrantableError("this node may not issue certificates (it has no issuer role)");
  if (scope.ring !== own.ring + 1)
    throw new ScopeNotGrantableError(
      `a ring-${own.ring} node certifies ring ${own.ring + 1} only, not ring ${scope.ring}; ` +
        `mint the token on a ring-${Math.max(0, scope.ring - 1)} node`,
    );
  if (scope.compartment.length > 0 && own.compartment.some((part, i) => scope.compartment[i] !== part))
    throw new ScopeNotGrantableError(
      `compartment ${scope.compartment.join("/")} is not nested under this node's (${own.compartment.join("/") || "none"})`,
    );
  if (own.tiers.length > 0 && scope.tiers.some((t) => !own.tiers.includes(t)))
    throw new ScopeNotGrantableError(
      `tiers ${scope.tiers.join(",")} are not within this node's (${own.tiers.join(",")})`,
    );
}

/** Certify `joinerKey`, persist and gossip the certificate, and build the JoinResponse. */
export async function admitJoiner(
  daemon: Daemon,
  joinerKey: Uint8Array,
  name: string,
  scope: { ring: Ring; tiers: readonly string[]; compartment: readonly string[] },
  nowMs: number,
): Promise<JoinResponse> {
  checkGrantable(daemon, scope);
  const own = daemon.selfCert;
  const fromRoot = scope.ring === 0 && daemon.root !== undefined;
  const certificate = fromRoot
    ? issueCertificate(daemon.root!, {
        subject: joinerKey,
        issuer: daemon.root!.publicKey,
        ring: 0,
        roles: ["node", "issuer", "admin"],
        compartment: [...scope.compartment],
        tiers: [...scope.tiers],
        serial: nowMs,
        notBeforeMs: nowMs - CLOCK_SLACK_MS,
        expiresMs: nowMs + SEED_CERTIFICATE_TTL_MS,
      })
    : issueCertificate(daemon.identity, {
        subject: joinerKey,
        issuer: daemon.identity.publicKey,
        ring: scope.ring,
        roles: rolesForRing(scope.ring),
        compartment: scope.compartment.length > 0 ? [...scope.compartment] : [...own.compartment],
        tiers: [...scope.tiers],
        serial: nowMs,
        notBeforeMs: Math.max(own.notBeforeMs, nowMs - CLOCK_SLACK_MS),
        expiresMs: Math.min(own.expiresMs, nowMs + MEMBER_CERTIFICATE_TTL_MS),
      });
  daemon.certificates.set(keyHex(joinerKey), certificate);
  await daemon.state.putCertificate(certificate);
  if (!daemon.node.relay(certificate))
    throw new Error("the new certificate did not pass this node's own checks");
  // On NATS, the server admits the joiner before it hears back, unless the reload is slow.
  await daemon.natsLink?.refresh(NATS_ADMIT_WAIT_MS);
  await daemon.store.appendAudit(
    "join",
    // The name the joiner asked for has no place in a certificate; the audit log keeps it.
    { joiner: keyHex(joinerKey), name, ring: scope.ring, tiers: scope.tiers },
    nowMs,
  );

  // Root-most first, up to the certificate's issuer: nothing above a root-issued certificate.
  const chain = fromRoot ? [] : [...daemon.self.chain, daemon.self.certificate];
  const inChain = new Set(chain.map((c) => keyHex(decodeCertificate(decodeEnvelope(c)).subject)));
  inChain.add(keyHex(joinerKey));
  const bundle = [...daemon.certificates.entries()]
    .filter(([hex]) => !inChain.has(hex))
    .map(([, env]) => env)
    .slice(0, MAX_BUNDLE_ENVELOPES);
  // A ring-(N+1) joiner of a ring-N issuer (N ≥ 1) lives on the issuer's children's network
  // (child-network.ts): its members, its address, its secret. A ring-1 joiner, on its parent's.
  const below = scope.ring >= 2 ? daemon.childNetwork : undefined;
  const network = below?.node ?? daemon.node;
  const address = below?.address ?? daemon.transport.address;
  const members: Alive[] = network.membership
    .members()
    .filter((m) => m.state !== "dead")
    .slice(0, MAX_BUNDLE_MEMBERS - 1)
    .map((m) => ({ node: keyFromHex(m.id), incarnation: m.incarnation, addr: m.addr }));
  members.push({ node: daemon.identity.publicKey, incarnation: 0, addr: address });
  return {
    certificate,
    chain,
    revocations: (await daemon.state.revocations()).slice(0, MAX_BUNDLE_ENVELOPES),
    members: members.filter((m, i, all) => all.findIndex((x) => keyHex(x.node) === keyHex(m.node)) === i),
    peers: below === undefined ? (daemon.natsLink?.joinPeers ?? [address]) : [address],
    sealedSecrets: sealRingSecret(below?.secret ?? daemon.ringSecret, joinerKey),
    certificates: bundle,
  };
}
