/**
 * ingestMany against ingest item by item: the same messages accepted in the same order, the same
 * counters, one signature check per distinct id, and a forged copy of an id never costing the honest
 * envelope its delivery. ingestFrame (batches that end at trust changes) against ingest item by item
 * when applying a message may change the trust store.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type Envelope,
  encodePayload,
  type FrameItem,
  generateIdentity,
  issueCertificate,
  MessageType,
  sealEnvelope,
  verifyEnvelope,
} from "../protocol/index.ts";
import { Counters } from "./counters.ts";
import { type Accepted, type IngestContext, ingest } from "./ingest.ts";
import { ingestFrame, ingestMany } from "./ingest-batch.ts";
import { TrustStore } from "./trust.ts";

const NOW = Date.UTC(2026, 5, 1);
const root = generateIdentity(new Uint8Array(32).fill(1));
const member = generateIdentity(new Uint8Array(32).fill(2));
const stranger = generateIdentity(new Uint8Array(32).fill(3));
const memberCertificate = issueCertificate(root, {
  subject: member.publicKey,
  issuer: root.publicKey,
  ring: 0,
  roles: ["node"],
  compartment: [],
  tiers: [],
  serial: 1,
  notBeforeMs: NOW - 60_000,
  expiresMs: NOW + 60_000,
});

/** A broadcast signed by `by`; `n` makes it distinct. */
const broadcast = (n: number, by = member): Uint8Array =>
  sealEnvelope(
    by,
    MessageType.Broadcast,
    encodePayload(MessageType.Broadcast, { topic: "t", data: new Uint8Array([n]), sentAtMs: n }),
  );

/** The same envelope with one payload byte changed: same id, signature no longer good. */
function forged(bytes: Uint8Array): Uint8Array {
  const out = bytes.slice();
  out[out.length - 65] = (out[out.length - 65] ?? 0) ^ 1;
  return out;
}

/** A ring-0 context whose seen-set the caller fills, counting signature checks. */
function context() {
  const trust = new TrustStore(root.publicKey);
  trust.addCertificate(memberCertificate, NOW);
  const seen = new Set<string>();
  const counters = new Counters();
  const checks = { n: 0 };
  const ctx: IngestContext = {
    trust,
    ring: 0,
    hasSeen: (id) => seen.has(id),
    counters,
    verify: (env: Envelope) => {
      checks.n++;
      return verifyEnvelope(env);
    },
  };
  return { ctx, seen, counters, checks };
}

const items = (...envelopes: Uint8Array[]): FrameItem[] =>
  envelopes.map((envelope) => ({ envelope, hops: 2 }));
const dataOf = (msgs: readonly Accepted[]) => msgs.map((m) => (m.payload as { data: Uint8Array }).data[0]);

describe("ingestMany", () => {
  it("accepts a batch in item order, each envelope verified once", () => {
    const { ctx, counters, checks } = context();
    const accepted = ingestMany(ctx, items(broadcast(3), broadcast(1), broadcast(2)), NOW);
    expect(dataOf(accepted)).toEqual([3, 1, 2]);
    expect(accepted.every((m) => m.hops === 2)).toBe(true);
    expect(checks.n).toBe(3);
    expect(counters.snapshot()).toEqual({ accepted: 3 });
  });

  it("counts a second copy of an id within the batch as a duplicate, without checking it again", () => {
    const { ctx, counters, checks } = context();
    const a = broadcast(1);
    const accepted = ingestMany(ctx, items(a, broadcast(2), a), NOW);
    expect(dataOf(accepted)).toEqual([1, 2]);
    expect(checks.n).toBe(2);
    expect(counters.snapshot()).toEqual({ accepted: 2, duplicate: 1 });
  });

  it("refuses and counts a bad signature in the middle, accepting the others", () => {
    const { ctx, counters } = context();
    const accepted = ingestMany(ctx, items(broadcast(1), forged(broadcast(2)), broadcast(3)), NOW);
    expect(dataOf(accepted)).toEqual([1, 3]);
    expect(counters.snapshot()).toEqual({ accepted: 2, "rejected:bad-signature": 1 });
  });

  it("still delivers an honest envelope that comes after a forged copy of its id", () => {
    const { ctx, counters, checks } = context();
    const honest = broadcast(7);
    const accepted = ingestMany(ctx, items(forged(honest), honest, honest), NOW);
    expect(dataOf(accepted)).toEqual([7]);
    expect(checks.n).toBe(2);
    expect(counters.snapshot()).toEqual({ accepted: 1, duplicate: 1, "rejected:bad-signature": 1 });
  });

  it("drops what was seen before the batch and refuses strangers before any signature check", () => {
    const { ctx, seen, counters, checks } = context();
    const old = broadcast(1);
    seen.add(ingest(ctx, old, 0, NOW)!.id);
    checks.n = 0;
    const accepted = ingestMany(ctx, items(old, broadcast(5, stranger), broadcast(2)), NOW);
    expect(dataOf(accepted)).toEqual([2]);
    expect(checks.n).toBe(1);
    expect(counters.snapshot()).toEqual({ accepted: 2, duplicate: 1, "rejected:unknown-sender": 1 });
  });

  it("agrees with ingest item by item (each accepted id marked seen) on any mix", () => {
    const pool = [
      broadcast(1),
      broadcast(2),
      broadcast(3),
      broadcast(4, stranger),
      new Uint8Array([1, 2, 3]),
    ];
    const kinds = fc.oneof(
      fc.nat({ max: pool.length - 1 }).map((i) => pool[i]!),
      fc.nat({ max: 2 }).map((i) => forged(pool[i]!)),
    );
    fc.assert(
      fc.property(fc.array(kinds, { maxLength: 12 }), (envelopes) => {
        const one = context();
        const byOne: Accepted[] = [];
        for (const envelope of envelopes) {
          const msg = ingest(one.ctx, envelope, 2, NOW);
          if (msg === null) continue;
          byOne.push(msg);
          one.seen.add(msg.id);
        }
        const batch = context();
        const byBatch = ingestMany(batch.ctx, items(...envelopes), NOW);
        expect(byBatch.map((m) => m.id)).toEqual(byOne.map((m) => m.id));
        expect(batch.counters.snapshot()).toEqual(one.counters.snapshot());
        expect(batch.checks.n).toBeLessThanOrEqual(one.checks.n);
      }),
    );
  });
});

/** An Announce of `stranger` by the root: taking it in lets the stranger's broadcasts through. */
const strangerCertificate = issueCertificate(root, {
  subject: stranger.publicKey,
  issuer: root.publicKey,
  ring: 0,
  roles: ["node"],
  compartment: [],
  tiers: [],
  serial: 2,
  notBeforeMs: NOW - 60_000,
  expiresMs: NOW + 60_000,
});

/** What a node does with an accepted message, as far as ingest can tell: certificates change trust. */
function applier(c: ReturnType<typeof context>, into: Accepted[]) {
  return (msg: Accepted) => {
    into.push(msg);
    c.seen.add(msg.id);
    if (msg.envelope.type === MessageType.Announce) c.ctx.trust.addCertificate(msg.envelope.bytes, NOW);
  };
}

describe("ingestFrame", () => {
  it("checks the items after an Announce against the trust it brings", () => {
    const c = context();
    const accepted: Accepted[] = [];
    const count = ingestFrame(
      c.ctx,
      items(broadcast(1, stranger), strangerCertificate, broadcast(2, stranger)),
      NOW,
      applier(c, accepted),
    );
    expect(count).toBe(2);
    expect(accepted.map((m) => m.envelope.type)).toEqual([MessageType.Announce, MessageType.Broadcast]);
    expect(c.counters.snapshot()).toEqual({ accepted: 2, "rejected:unknown-sender": 1 });
  });

  it("agrees with ingest item by item when applying changes trust, on any mix", () => {
    const pool = [
      broadcast(1),
      broadcast(2),
      broadcast(3, stranger),
      broadcast(4, stranger),
      strangerCertificate,
    ];
    const kinds = fc.oneof(
      fc.nat({ max: pool.length - 1 }).map((i) => pool[i]!),
      fc.nat({ max: 3 }).map((i) => forged(pool[i]!)),
    );
    fc.assert(
      fc.property(fc.array(kinds, { maxLength: 12 }), (envelopes) => {
        const one = context();
        const byOne: Accepted[] = [];
        const applyOne = applier(one, byOne);
        for (const envelope of envelopes) {
          const msg = ingest(one.ctx, envelope, 2, NOW);
          if (msg !== null) applyOne(msg);
        }
        const frame = context();
        const byFrame: Accepted[] = [];
        expect(ingestFrame(frame.ctx, items(...envelopes), NOW, applier(frame, byFrame))).toBe(
          byFrame.length,
        );
        expect(byFrame.map((m) => m.id)).toEqual(byOne.map((m) => m.id));
        expect(frame.counters.snapshot()).toEqual(one.counters.snapshot());
      }),
    );
  });
});
