/**
 * The trust store and the ingest pipeline's refusals, one test per way a key can fail to be
 * trusted: each refusal is precise (its error class or reason), stores nothing, and is counted.
 */
import { describe, expect, it } from "vitest";
import {
  type Certificate,
  CertificateError,
  encodePayload,
  generateIdentity,
  type Identity,
  IssuerNotAuthorizedError,
  issueCertificate,
  issueRevocation,
  keyHex,
  MessageType,
  SelfSignedError,
  sealEnvelope,
  WidensRightsError,
  WrongRingError,
} from "../protocol/index.ts";
import { Counters } from "./counters.ts";
import { ingest } from "./ingest.ts";
import { RevocationNotAuthorizedError, ROOT, TrustStore } from "./trust.ts";

const NOW = Date.UTC(2026, 5, 1);
const DAY = 86_400_000;
let seedByte = 1;
const key = (): Identity => generateIdentity(new Uint8Array(32).fill(seedByte++));
const root = key();

/** Issue a certificate for `subject` by `issuer`, with sensible defaults for every field. */
function cert(issuer: Identity, subject: Identity, fields: Partial<Certificate> = {}): Uint8Array {
  return issueCertificate(issuer, {
    subject: subject.publicKey,
    issuer: issuer.publicKey,
    ring: 0,
    roles: ["node"],
    compartment: [],
    tiers: [],
    serial: 1,
    notBeforeMs: NOW - DAY,
    expiresMs: NOW + DAY,
    ...fields,
  });
}

/** A store holding root → ring-0 issuer → ring-1 issuer → ring-2 node. */
function tree() {
  const store = new TrustStore(root.publicKey);
  const r0 = key();
  const r1 = key();
  const r2 = key();
  store.addCertificate(cert(root, r0, { ring: 0, roles: ["node", "issuer"] }), NOW);
  store.addCertificate(cert(r0, r1, { ring: 1, roles: ["node", "issuer"], expiresMs: NOW + DAY / 2 }), NOW);
  store.addCertificate(cert(r1, r2, { ring: 2, roles: ["node"], expiresMs: NOW + DAY / 4 }), NOW);
  return { store, r0, r1, r2 };
}

/** Whether `fn` throws an error of class `cls` (a CertificateError subclass) and nothing else. */
function refusedWith(fn: () => unknown, cls: new (...args: never[]) => Error): void {
  expect(fn).toThrow(cls);
}

describe("trust store", () => {
  it("trusts a chain root → ring 0 → ring 1 → ring 2, each with its certificate as standing", () => {
    const { store, r0, r1, r2 } = tree();
    expect(store.standing(keyHex(root.publicKey), NOW)).toBe(ROOT);
    for (const k of [r0, r1, r2]) expect(store.isTrusted(keyHex(k.publicKey), NOW)).toBe(true);
    const leaf = store.standing(keyHex(r2.publicKey), NOW);
    expect(typeof leaf === "object" && leaf.ring).toBe(2);
  });

  it("refuses a ring-2 node certifying a ring-1 key (and any key: ring 2 issues nothing)", () => {
    const { store, r2 } = tree();
    const victim = key();
    refusedWith(() => store.addCertificate(cert(r2, victim, { ring: 1 }), NOW), IssuerNotAuthorizedError);
    expect(store.isTrusted(keyHex(victim.publicKey), NOW)).toBe(false);
    expect(store.standing(keyHex(victim.publicKey), NOW)).toBe("unknown-sender");
  });

  it("refuses a ring-1 issuer certifying at its own ring or above", () => {
    const { store, r1 } = tree();
    refusedWith(() => store.addCertificate(cert(r1, key(), { ring: 1 }), NOW), WrongRingError);
    refusedWith(() => store.addCertificate(cert(r1, key(), { ring: 0 }), NOW), WrongRingError);
  });

  it("refuses a certificate from a revoked issuer, and stops trusting what it issued at once", () => {
    const { store, r0, r1, r2 } = tree();
    store.addRevocation(
      issueRevocation(root, {
        subject: r1.publicKey,
        issuer: root.publicKey,
        epoch: 1,
        atMs: NOW,
        reason: "test",
      }),
      NOW,
    );
    expect(store.standing(keyHex(r1.publicKey), NOW)).toBe("revoked-sender");
    expect(store.standing(keyHex(r2.publicKey), NOW)).toBe("untrusted-issuer");
    expect(store.isTrusted(keyHex(r0.publicKey), NOW)).toBe(true);
    const fresh = key();
    refusedWith(() => store.addCertificate(cert(r1, fresh, { ring: 2 }), NOW), CertificateError);
    expect(store.standing(keyHex(fresh.publicKey), NOW)).toBe("unknown-sender");
  });

  it("stops trusting an expired certificate, and its children with it", () => {
    const { store, r1, r2 } = tree();
    const later = NOW + DAY / 2; // r1 expires exactly now; r2 expired earlier
    expect(store.standing(keyHex(r1.publicKey), later)).toBe("expired-sender");
    expect(store.standing(keyHex(r2.publicKey), later)).toBe("expired-sender");
    const afterR2Only = NOW + DAY / 3;
    expect(store.standing(keyHex(r2.publicKey), afterR2Only)).toBe("expired-sender");
    expect(store.isTrusted(keyHex(r1.publicKey), afterR2Only)).toBe(true);
  });

  it("refuses a certificate that is already expired or not yet valid when presented", () => {
    const { store, r0 } = tree();
    refusedWith(
      () =>
        store.addCertificate(
          cert(r0, key(), { ring: 1, notBeforeMs: NOW - 2 * DAY, expiresMs: NOW - 1 }),
          NOW,
        ),
      CertificateError,
    );
    refusedWith(
      () =>
        store.addCertificate(
          cert(r0, key(), { ring: 1, notBeforeMs: NOW + 1_000, expiresMs: NOW + DAY / 2 }),
          NOW,
        ),
      CertificateError,
    );
  });

  it("refuses certificates that widen their issuer's rights: roles, compartment, tiers, validity", () => {
    const store = new TrustStore(root.publicKey);
    const r0 = key();
    store.addCertificate(
      cert(root, r0, { roles: ["node", "issuer"], compartment: ["eu", "dc1"], tiers: ["web", "db"] }),
      NOW,
    );
    const base = { ring: 1 as const, compartment: ["eu", "dc1"], tiers: ["web"] };
    refusedWith(
      () => store.addCertificate(cert(r0, key(), { ...base, roles: ["node", "admin"] }), NOW),
      WidensRightsError,
    );
    refusedWith(
      () => store.addCertificate(cert(r0, key(), { ...base, compartment: ["eu"] }), NOW),
      WidensRightsError,
    );
    refusedWith(
      () => store.addCertificate(cert(r0, key(), { ...base, compartment: ["us", "dc1"] }), NOW),
      WidensRightsError,
    );
    refusedWith(
      () => store.addCertificate(cert(r0, key(), { ...base, tiers: ["cache"] }), NOW),
      WidensRightsError,
    );
    refusedWith(
      () => store.addCertificate(cert(r0, key(), { ...base, expiresMs: NOW + 2 * DAY }), NOW),
      WidensRightsError,
    );
    // Narrowing is fine.
    const ok = key();
    store.addCertificate(
      cert(r0, ok, { ...base, compartment: ["eu", "dc1", "rack3"], expiresMs: NOW + DAY / 2 }),
      NOW,
    );
    expect(store.isTrusted(keyHex(ok.publicKey), NOW)).toBe(true);
  });

  it("refuses a self-signed key", () => {
    const store = new TrustStore(root.publicKey);
    const self = key();
    refusedWith(() => store.addCertificate(cert(self, self), NOW), CertificateError);
    // Even through an issuer path that would otherwise be fine, a key cannot certify itself.
    const { store: s2, r0 } = tree();
    refusedWith(() => s2.addCertificate(cert(r0, r0, { ring: 1 }), NOW), SelfSignedError);
  });

  it("refuses a revocation from someone with no authority over the subject", () => {
    const { store, r0, r1, r2 } = tree();
    const stranger = key();
    expect(() =>
      store.addRevocation(
        issueRevocation(stranger, {
          subject: r0.publicKey,
          issuer: stranger.publicKey,
          epoch: 1,
          atMs: NOW,
          reason: "x",
        }),
        NOW,
      ),
    ).toThrow(RevocationNotAuthorizedError);
    // A ring-2 node cannot revoke its own issuer either.
    expect(() =>
      store.addRevocation(
        issueRevocation(r2, {
          subject: r1.publicKey,
          issuer: r2.publicKey,
          epoch: 1,
          atMs: NOW,
          reason: "x",
        }),
        NOW,
      ),
    ).toThrow(RevocationNotAuthorizedError);
    expect(store.isRevoked(keyHex(r0.publicKey))).toBe(false);
    expect(store.isRevoked(keyHex(r1.publicKey))).toBe(false);
  });
});

describe("ingest refusals, counted with their reason", () => {
  const broadcast = (sender: Identity) =>
    sealEnvelope(
      sender,
      MessageType.Broadcast,
      encodePayload(MessageType.Broadcast, { topic: "t", data: new Uint8Array([1]), sentAtMs: NOW }),
    );
  const context = (store: TrustStore, ring: 0 | 1 | 2) => {
    const counters = new Counters();
    return { counters, ctx: { trust: store, ring, hasSeen: () => false, counters } };
  };

  it("refuses a message from a key that was never announced", () => {
    const { store } = tree();
    const { counters, ctx } = context(store, 0);
    expect(ingest(ctx, broadcast(key()), 3, NOW)).toBeNull();
    expect(counters.snapshot()).toEqual({ "rejected:unknown-sender": 1 });
  });

  it("admits ring N and N+1 on ring N's network, refuses the rest, and refuses a node issuing certificates", () => {
    const { store, r0, r1, r2 } = tree();
    const ring0 = context(store, 0);
    expect(ingest(ring0.ctx, broadcast(r0), 3, NOW)).not.toBeNull();
    expect(ingest(ring0.ctx, broadcast(r1), 3, NOW)).not.toBeNull(); // a child talks on its parent's network
    expect(ingest(ring0.ctx, broadcast(r2), 3, NOW)).toBeNull(); // a grandchild does not
    expect(ring0.counters.get("rejected:not-a-member-of-ring")).toBe(1);
    const ring2 = context(store, 2);
    expect(ingest(ring2.ctx, broadcast(r1), 3, NOW)).toBeNull(); // a parent is not a member of its child ring
    expect(ring2.counters.get("rejected:not-a-member-of-ring")).toBe(1);

    const announce = cert(r2, key(), { ring: 2 });
    expect(ingest(ring2.ctx, announce, 3, NOW)).toBeNull();
    expect(ring2.counters.get("rejected:not-an-issuer")).toBe(1);
  });

  it("lets results come up from every ring below a network, never from above", () => {
    const { store, r0, r2 } = tree();
    const result = (sender: Identity) =>
      sealEnvelope(
        sender,
        MessageType.Result,
        encodePayload(MessageType.Result, {
          commandId: new Uint8Array(16).fill(9),
          exitCode: 0,
          stdout: new Uint8Array(),
          stderr: new Uint8Array(),
          truncated: false,
        }),
      );
    const ring0 = context(store, 0);
    expect(ingest(ring0.ctx, result(r2), 3, NOW)).not.toBeNull(); // a grandchild's answer, bridged up
    expect(ingest(ring0.ctx, broadcast(r2), 3, NOW)).toBeNull(); // but it is no member here
    const ring1 = context(store, 1);
    expect(ingest(ring1.ctx, result(r0), 3, NOW)).toBeNull();
    expect(ring1.counters.snapshot()).toEqual({ "rejected:not-a-member-of-ring": 1 });
  });

  it("refuses a revoked sender and an expired one", () => {
    const { store, r0, r1 } = tree();
    const { counters, ctx } = context(store, 1);
    expect(ingest(ctx, broadcast(r1), 3, NOW + DAY)).toBeNull();
    expect(counters.get("rejected:expired-sender")).toBe(1);
    store.addRevocation(
      issueRevocation(r0, { subject: r1.publicKey, issuer: r0.publicKey, epoch: 1, atMs: NOW, reason: "x" }),
      NOW,
    );
    expect(ingest(ctx, broadcast(r1), 3, NOW)).toBeNull();
    expect(counters.get("rejected:revoked-sender")).toBe(1);
  });
});

describe("TrustStore.hexOf", () => {
  it("names keys as keyHex does, also for keys sharing their first four bytes", () => {
    const store = new TrustStore(new Uint8Array(32).fill(1));
    const a = new Uint8Array(32).fill(7);
    const b = a.slice();
    b[31] = 8; // same cache slot as `a`, different key
    for (let i = 0; i < 3; i++) {
      expect(store.hexOf(a)).toBe(keyHex(a));
      expect(store.hexOf(b)).toBe(keyHex(b));
    }
    // The cache keeps its own copy: changing the caller's bytes afterwards changes nothing.
    const c = new Uint8Array(32).fill(9);
    store.hexOf(c);
    c[20] = 0;
    expect(store.hexOf(c)).toBe(keyHex(c));
  });
});
