/** fast-check arbitraries producing valid payloads of every message type (tests only). */
import fc from "fast-check";
import type { PayloadOf } from "./messages.ts";
import { ROLES } from "./schema.ts";
import { MessageType } from "./types.ts";

const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
const key = bytes(32);
const id = bytes(16);
const label = fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,12}$/);
const labels = (max: number) => fc.uniqueArray(label, { maxLength: max });
const uint = fc.nat({ max: Number.MAX_SAFE_INTEGER });
const time = fc.nat({ max: 2 ** 45 });
const ring = fc.constantFrom(0 as const, 1 as const, 2 as const);
const text = (maxChars: number) => fc.string({ unit: "binary", maxLength: maxChars });
const probe = fc.record({ seq: fc.nat({ max: 0xffffffff }), target: key });
const alive = fc.record({ node: key, incarnation: uint, addr: text(40) });
const nodeInc = fc.record({ node: key, incarnation: uint });
const idList = fc.record({ ids: fc.array(id, { maxLength: 20 }) });
const noticeEntries = fc.array(nodeInc, { maxLength: 8 });
/** Sorted by key, each key once, as a MemberDigest's schema requires. */
const memberDigest = fc
  .record({
    summary: fc.boolean(),
    partial: fc.boolean(),
    extra: fc.nat({ max: 1_000 }),
    hash: bytes(16),
    entries: fc
      .uniqueArray(nodeInc, { maxLength: 8, selector: (e) => Buffer.from(e.node).toString("hex") })
      .map((es) => es.sort((a, b) => Buffer.compare(a.node, b.node))),
  })
  .map(({ summary, partial, extra, hash, entries }) =>
    summary
      ? { summary, partial: false, held: extra, hash, entries: [] }
      : { summary, partial, held: entries.length + extra, hash, entries },
  );
const window = fc.tuple(time, fc.integer({ min: 1, max: 2 ** 40 })).map(([a, d]) => [a, a + d] as const);

/** A valid certificate (random keys, so not a valid chain step). */
export const certificateArb = fc
  .record({
    subject: key,
    issuer: key,
    ring,
    roles: fc.uniqueArray(fc.constantFrom(...ROLES), { minLength: 1, maxLength: 5 }),
    compartment: fc.array(label, { maxLength: 4 }),
    tiers: labels(4),
    serial: uint,
    window,
  })
  .map(({ window: [notBeforeMs, expiresMs], ...c }) => ({ ...c, notBeforeMs, expiresMs }));

/** A valid value for each message type. */
export const payloadArbs: { [T in MessageType]: fc.Arbitrary<PayloadOf<T>> } = {
  [MessageType.Announce]: certificateArb,
  [MessageType.Revoke]: fc.record({ subject: key, issuer: key, epoch: uint, atMs: time, reason: text(60) }),
  [MessageType.Ping]: probe,
  [MessageType.PingReq]: probe,
  [MessageType.Ack]: probe,
  [MessageType.Nack]: probe,
  [MessageType.Suspect]: nodeInc,
  [MessageType.Alive]: alive,
  [MessageType.Dead]: nodeInc,
  [MessageType.Broadcast]: fc.record({
    topic: fc.string({ minLength: 1, maxLength: 30 }),
    data: fc.uint8Array({ maxLength: 200 }),
    sentAtMs: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  }),
  [MessageType.Command]: fc
    .record({
      selector: fc.record(
        {
          ring,
          nodes: fc.array(key, { maxLength: 3 }),
          compartment: fc.array(label, { maxLength: 3 }),
          tiers: labels(3),
          labels: labels(3),
        },
        { requiredKeys: [] },
      ),
      action: label,
      args: fc.array(text(20), { maxLength: 5 }),
      nonce: id,
      window,
    })
    .map(({ window: [issuedAtMs, expiresMs], ...c }) => ({ ...c, issuedAtMs, expiresMs })),
  [MessageType.Result]: fc.record({
    commandId: id,
    exitCode: fc.integer({ min: -0x80000000, max: 0x7fffffff }),
    stdout: fc.uint8Array({ maxLength: 100 }),
    stderr: fc.uint8Array({ maxLength: 100 }),
    truncated: fc.boolean(),
  }),
  [MessageType.JoinRequest]: fc.record({ tokenId: id, joinerKey: key, mac: bytes(32), name: label }),
  [MessageType.JoinResponse]: fc.record({
    certificate: fc.uint8Array({ maxLength: 200 }),
    chain: fc.array(fc.uint8Array({ maxLength: 100 }), { maxLength: 3 }),
    revocations: fc.array(fc.uint8Array({ maxLength: 100 }), { maxLength: 3 }),
    members: fc.array(alive, { maxLength: 3 }),
    peers: fc.array(text(20), { maxLength: 3 }),
    sealedSecrets: fc.uint8Array({ maxLength: 100 }),
    certificates: fc.array(fc.uint8Array({ maxLength: 100 }), { maxLength: 3 }),
  }),
  [MessageType.Digest]: idList,
  [MessageType.Want]: idList,
  [MessageType.MemberDigest]: memberDigest,
  [MessageType.MemberWant]: fc.record({ entries: noticeEntries }),
};
