import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { certificateArb } from "./arbitraries.test-support.ts";
import { checkIssuance, decodeCertificate, issueCertificate, verifyChain } from "./certificate.ts";
import { decodeEnvelope, sealEnvelope } from "./envelope.ts";
import {
  BadSignatureError,
  CertificateError,
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
import { bytesEqual, generateIdentity, type Identity } from "./keys.ts";
import { encodePayload } from "./messages.ts";
import { decodeRevocation, issueRevocation } from "./revocation.ts";
import { type Certificate, MessageType } from "./types.ts";

const id = (n: number) => generateIdentity(new Uint8Array(32).fill(n));
const root = id(1);
const meta = id(2); // ring 0 node: node + issuer + admin
const infra = id(3); // ring 1 node: node + issuer
const app = id(4); // ring 2 node
const operator = id(5);
const NOW = 1_700_000_000_000;
const DAY = 86_400_000;

function cert(subject: Identity, issuer: Identity, over: Partial<Certificate> = {}): Certificate {
  return {
    subject: subject.publicKey,
    issuer: issuer.publicKey,
    ring: 0,
    roles: ["node"],
    compartment: [],
    tiers: [],
    serial: 1,
    notBeforeMs: NOW - DAY,
    expiresMs: NOW + DAY,
    ...over,
  };
}

const metaCert = cert(meta, root, {
  roles: ["node", "issuer", "admin"],
  compartment: ["eu"],
  notBeforeMs: NOW - 10 * DAY,
  expiresMs: NOW + 10 * DAY,
});
const infraCert = cert(infra, meta, {
  ring: 1,
  roles: ["node", "issuer"],
  compartment: ["eu", "dc1"],
  tiers: ["web", "db"],
  notBeforeMs: NOW - 5 * DAY,
  expiresMs: NOW + 5 * DAY,
});
const appCert = cert(app, infra, {
  ring: 2,
  roles: ["node"],
  compartment: ["eu", "dc1", "rack3"],
  tiers: ["web"],
});
const opCert = cert(operator, meta, { ring: 0, roles: ["operator", "viewer"], compartment: ["eu"] });
const rootKey = root.publicKey;

const chain = () => [
  issueCertificate(root, metaCert),
  issueCertificate(meta, infraCert),
  issueCertificate(infra, appCert),
];

describe("certificates", () => {
  it("issues and decodes; the envelope signer must be the issuer", () => {
    const env = decodeEnvelope(issueCertificate(root, metaCert));
    expect(env.type).toBe(MessageType.Announce);
    const back = decodeCertificate(env);
    expect(bytesEqual(back.subject, meta.publicKey)).toBe(true);
    expect(back.roles).toEqual(["node", "issuer", "admin"]);
    expect(() => issueCertificate(meta, metaCert)).toThrow(EncodeError);
    const forged = decodeEnvelope(
      sealEnvelope(meta, MessageType.Announce, encodePayload(MessageType.Announce, metaCert)),
    );
    expect(() => decodeCertificate(forged)).toThrow(IssuerMismatchError);
    expect(() =>
      decodeCertificate(decodeEnvelope(sealEnvelope(meta, MessageType.Ping, new Uint8Array(36)))),
    ).toThrow(WrongTypeError);
  });

  it("verifies a root → ring 0 → ring 1 → ring 2 chain and an operator chain", () => {
    expect(bytesEqual(verifyChain(rootKey, chain(), NOW).subject, app.publicKey)).toBe(true);
    const ops = verifyChain(rootKey, [issueCertificate(root, metaCert), issueCertificate(meta, opCert)], NOW);
    expect(ops.roles).toEqual(["operator", "viewer"]);
    // Decoded envelopes are accepted as well as bytes, and a root anchor may lead the chain.
    const anchor = issueCertificate(
      root,
      cert(root, root, { roles: ["node", "issuer", "admin"], notBeforeMs: 0, expiresMs: NOW * 2 }),
    );
    expect(verifyChain(rootKey, [decodeEnvelope(anchor), ...chain()], NOW).ring).toBe(2);
  });

  it("refuses each broken step with its precise error", () => {
    // The root issues ring 0 only.
    expect(() => checkIssuance("root", cert(infra, root, { ring: 1 }), rootKey, NOW)).toThrow(WrongRingError);
    // A ring-2 node cannot certify a ring-1 node, nor can a ring-1 issuer certify ring 1.
    const r2issuer = { ...appCert, roles: ["node", "issuer"] as const };
    expect(() => checkIssuance(r2issuer, cert(id(9), app, { ring: 1 }), rootKey, NOW)).toThrow(
      WrongRingError,
    );
    expect(() =>
      checkIssuance(infraCert, cert(id(9), infra, { ring: 1, compartment: ["eu", "dc1"] }), rootKey, NOW),
    ).toThrow(WrongRingError);
    // Expired, not yet valid.
    expect(() => checkIssuance(infraCert, { ...appCert, expiresMs: NOW }, rootKey, NOW)).toThrow(
      CertificateExpiredError,
    );
    expect(() => checkIssuance(infraCert, { ...appCert, notBeforeMs: NOW + 1 }, rootKey, NOW)).toThrow(
      CertificateNotYetValidError,
    );
    // Widening roles, compartment, tiers, validity.
    expect(() => checkIssuance(infraCert, { ...appCert, roles: ["node", "admin"] }, rootKey, NOW)).toThrow(
      WidensRightsError,
    );
    expect(() => checkIssuance(infraCert, { ...appCert, roles: ["node", "issuer"] }, rootKey, NOW)).toThrow(
      WidensRightsError,
    );
    expect(() => checkIssuance(infraCert, { ...appCert, compartment: ["eu"] }, rootKey, NOW)).toThrow(
      WidensRightsError,
    );
    expect(() =>
      checkIssuance(infraCert, { ...appCert, compartment: ["us", "dc1", "rack3"] }, rootKey, NOW),
    ).toThrow(WidensRightsError);
    expect(() => checkIssuance(infraCert, { ...appCert, tiers: ["web", "cache"] }, rootKey, NOW)).toThrow(
      WidensRightsError,
    );
    expect(() => checkIssuance(infraCert, { ...appCert, expiresMs: NOW + 6 * DAY }, rootKey, NOW)).toThrow(
      WidensRightsError,
    );
    expect(() => checkIssuance(infraCert, { ...appCert, notBeforeMs: NOW - 6 * DAY }, rootKey, NOW)).toThrow(
      WidensRightsError,
    );
    // Self-signed below the root.
    expect(() => checkIssuance(metaCert, cert(meta, meta, { ring: 1 }), rootKey, NOW)).toThrow(
      SelfSignedError,
    );
    // A non-issuer issuing; a non-admin certifying an operator; an operator outside ring 0.
    const plainNode = { ...infraCert, roles: ["node"] as const };
    expect(() => checkIssuance(plainNode, appCert, rootKey, NOW)).toThrow(IssuerNotAuthorizedError);
    expect(() =>
      checkIssuance(infraCert, cert(operator, infra, { ring: 0, roles: ["operator"] }), rootKey, NOW),
    ).toThrow(IssuerNotAuthorizedError);
    expect(() => checkIssuance(metaCert, { ...opCert, ring: 1 }, rootKey, NOW)).toThrow(WrongRingError);
    expect(() => checkIssuance(metaCert, { ...opCert, roles: ["operator", "node"] }, rootKey, NOW)).toThrow(
      WidensRightsError,
    );
    // The child names another issuer than the one checked.
    expect(() => checkIssuance(metaCert, appCert, rootKey, NOW)).toThrow(IssuerMismatchError);
    // All are CertificateErrors with stable reasons.
    try {
      checkIssuance(infraCert, { ...appCert, expiresMs: NOW }, rootKey, NOW);
    } catch (e) {
      expect(e).toBeInstanceOf(CertificateError);
      expect((e as CertificateError).reason).toBe("expired");
      expect((e as Error).name).toBe("CertificateExpiredError");
    }
  });

  it("refuses bad chains as a whole", () => {
    const [c0, c1, c2] = chain();
    expect(() => verifyChain(rootKey, [], NOW)).toThrow(MalformedChainError);
    expect(() => verifyChain(rootKey, [c1!, c2!], NOW)).toThrow(IssuerMismatchError);
    expect(() => verifyChain(rootKey, [c0!, c2!], NOW)).toThrow(IssuerMismatchError);
    const flipped = c1!.slice();
    flipped[flipped.length - 1]! ^= 1;
    expect(() => verifyChain(rootKey, [c0!, flipped, c2!], NOW)).toThrow(BadSignatureError);
    expect(() => verifyChain(id(7).publicKey, chain(), NOW)).toThrow(CertificateError);
    const revokedInfra = (k: Uint8Array) => bytesEqual(k, infra.publicKey);
    expect(() => verifyChain(rootKey, chain(), NOW, { isRevoked: revokedInfra })).toThrow(
      CertificateRevokedError,
    );
    expect(() =>
      verifyChain(rootKey, [c0!, c1!, c2!], NOW, { isRevoked: (k) => bytesEqual(k, meta.publicKey) }),
    ).toThrow(CertificateError);
    expect(() => verifyChain(rootKey, [c2!], NOW, { isRevoked: revokedInfra })).toThrow(IssuerRevokedError);
    expect(() => verifyChain(rootKey, chain(), NOW + 2 * DAY)).toThrow(CertificateExpiredError);
  });

  it("issues and decodes revocations", () => {
    const rev = {
      subject: app.publicKey,
      issuer: infra.publicKey,
      epoch: 3,
      atMs: NOW,
      reason: "key compromised",
    };
    const back = decodeRevocation(decodeEnvelope(issueRevocation(infra, rev)));
    expect(back.epoch).toBe(3);
    expect(back.reason).toBe("key compromised");
    expect(() => issueRevocation(app, rev)).toThrow(EncodeError);
    expect(() => decodeRevocation(decodeEnvelope(issueCertificate(root, metaCert)))).toThrow(WrongTypeError);
  });
});

describe("checkIssuance properties", () => {
  it("property: any pair of certificates either passes or throws a CertificateError", () => {
    const keys = [root, meta, infra, app].map((k) => k.publicKey);
    const keyed = certificateArb.chain((c) =>
      fc
        .record({ subject: fc.constantFrom(...keys), issuer: fc.constantFrom(...keys) })
        .map((k) => ({ ...c, ...k })),
    );
    fc.assert(
      fc.property(
        fc.oneof(fc.constant("root" as const), keyed),
        keyed,
        fc.nat({ max: 2 ** 46 }),
        (parent, child, now) => {
          try {
            checkIssuance(parent, child, rootKey, now);
          } catch (e) {
            if (!(e instanceof CertificateError)) throw e;
          }
        },
      ),
      { numRuns: 1000 },
    );
  });
});
