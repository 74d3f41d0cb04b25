/**
 * Golden byte vectors: fixed seeds give fixed bytes (ed25519 signatures are deterministic).
 * If one of these changes, the wire format changed: that needs a protocol version, not a new hex.
 */

import { createHash } from "node:crypto";
import sodiumWrappers from "libsodium-wrappers";
import { describe, expect, it } from "vitest";
import { decodeCertificate, issueCertificate, verifyChain } from "./certificate.ts";
import { decodeEnvelope, envelopeIdKey, sealEnvelope, verifyEnvelope } from "./envelope.ts";
import { EncodeError, SchemaError } from "./errors.ts";
import { decodeFrame, encodeFrame } from "./frame.ts";
import { generateIdentity, keyHex } from "./keys.ts";
import { decodePayload, encodePayload, noticeSetHash } from "./messages.ts";
import { MessageType } from "./types.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
/** Join [hex, comment] rows into one hex string (comments document each field). */
const rows = (r: readonly (readonly [string, string])[]) => r.map(([h]) => h).join("");

const root = generateIdentity(new Uint8Array(32).fill(1));
const node = generateIdentity(new Uint8Array(32).fill(2));
const ROOT_PK = "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c";
const NODE_PK = "8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394";

const BROADCAST_SIG =
  "17866047ef452a797e5146171a5cdc7ddf7033eb09ceb973cd6dcbfc71ad555d" +
  "777c3be07bee09097711872710a8d09a0ebfd70affb3e63ed62f74f0a8c5a00e";

const ENVELOPE = rows([
  ["01", "version 1"],
  ["000a", "type 10 = Broadcast"],
  [NODE_PK, "sender public key (seed 0x02 * 32)"],
  ["00000012", "payload length 18"],
  ["0001", "  payload: topic length 1"],
  ["74", "  payload: topic 't'"],
  ["00000003", "  payload: data length 3"],
  ["010203", "  payload: data"],
  ["0000018bcfe56800", "  payload: sentAtMs 1_700_000_000_000"],
  [BROADCAST_SIG, "signature over 'enjin/envelope/v1\\0' || 000a || payload; id = first 16 bytes"],
]);

const FRAME = rows([
  ["01", "frame version 1"],
  ["01", "1 item"],
  ["03", "item 0: 3 hops left"],
  ["00000079", "item 0: envelope length 121"],
  [ENVELOPE, "item 0: the envelope above"],
]);

const CERT_SIG =
  "7a0e086b19b7f565e342f38d375f821f28983b01d34936772d75c87378b3d385" +
  "daf7993ce2be227e50e6c312be885ca8e7eaf898d7a94255a6604e76588b950b";
const CERTIFICATE = rows([
  ["01", "version 1"],
  ["0001", "type 1 = Announce"],
  [ROOT_PK, "sender = issuer = root key (seed 0x01 * 32)"],
  ["00000071", "payload length 113"],
  [NODE_PK, "  subject"],
  [ROOT_PK, "  issuer"],
  ["00", "  ring 0"],
  ["0002", "  roles: 2 items"],
  ["0004" + hex(new TextEncoder().encode("node")), "  'node'"],
  ["0006" + hex(new TextEncoder().encode("issuer")), "  'issuer'"],
  ["0001", "  compartment: 1 item"],
  ["0002" + "6575", "  'eu'"],
  ["0000", "  tiers: none"],
  ["0000000000000007", "  serial 7"],
  ["0000018bcfe56800", "  notBeforeMs 1_700_000_000_000"],
  ["000001a3185c5000", "  expiresMs 1_800_000_000_000"],
  [CERT_SIG, "signature by the root over 'enjin/envelope/v1\\0' || 0001 || payload"],
]);

/** noticeSetHash of the two entries below. */
const NOTICE_SET_HASH = "4711500676a9c0b2f314499e855f8c94";
const DIGEST_SIG =
  "803c35d8083f4a2ece62ac242229f28998fa3dc888fe044ce89b02b713c8f18f" +
  "1344fcb1c7c8e182dec45a75a628f6f648a563da02802a07013dcaf213899b02";
const MEMBER_DIGEST = rows([
  ["01", "version 1"],
  ["0011", "type 17 = MemberDigest"],
  [NODE_PK, "sender public key (seed 0x02 * 32)"],
  ["00000067", "payload length 103"],
  ["00", "  flags: not a summary, not partial (the entries speak for every key)"],
  ["00000002", "  held: 2 notices in all"],
  [NOTICE_SET_HASH, "  hash of the set"],
  ["0002", "  entries: 2, sorted by key"],
  [NODE_PK, "  entry 0: node"],
  ["0000000000000003", "  entry 0: incarnation 3"],
  [ROOT_PK, "  entry 1: node"],
  ["0000000000000007", "  entry 1: incarnation 7"],
  [DIGEST_SIG, "signature over 'enjin/envelope/v1\\0' || 0011 || payload"],
]);

const SUMMARY_SIG =
  "eb00350ff9bfe077464172a2476f87a7f71766eeb5175e97b8d62b645774464f" +
  "a469f324c68cf321edbce40f417779e5825649777f78400966c96e0bc3464a0a";
const MEMBER_SUMMARY = rows([
  ["01", "version 1"],
  ["0011", "type 17 = MemberDigest"],
  [NODE_PK, "sender public key (seed 0x02 * 32)"],
  ["00000017", "payload length 23"],
  ["02", "  flags: summary (entries left out)"],
  ["00000002", "  held: 2 notices in all"],
  [NOTICE_SET_HASH, "  hash of the set"],
  ["0000", "  entries: none"],
  [SUMMARY_SIG, "signature over 'enjin/envelope/v1\\0' || 0011 || payload"],
]);

const WANT_SIG =
  "470f6407a157d1957d960dfcd112bd9bedf3548fe8aa65150ca59cfe1b598d2e" +
  "03ebe671ada19544075596231ace8775dc56ec613732a4b97335c543b988bb0c";
const MEMBER_WANT = rows([
  ["01", "version 1"],
  ["0012", "type 18 = MemberWant"],
  [ROOT_PK, "sender public key (seed 0x01 * 32)"],
  ["0000002a", "payload length 42"],
  ["0001", "  entries: 1"],
  [NODE_PK, "  entry 0: node"],
  ["0000000000000003", "  entry 0: incarnation 3"],
  [WANT_SIG, "signature over 'enjin/envelope/v1\\0' || 0012 || payload"],
]);

describe("golden vectors", () => {
  it("derives the fixed keys", () => {
    expect(keyHex(root.publicKey)).toBe(ROOT_PK);
    expect(keyHex(node.publicKey)).toBe(NODE_PK);
  });

  it("envelope", () => {
    const payload = encodePayload(MessageType.Broadcast, {
      topic: "t",
      data: new Uint8Array([1, 2, 3]),
      sentAtMs: 1_700_000_000_000,
    });
    const bytes = sealEnvelope(node, MessageType.Broadcast, payload);
    expect(hex(bytes)).toBe(ENVELOPE);
    const env = decodeEnvelope(Buffer.from(ENVELOPE, "hex"));
    expect(verifyEnvelope(env)).toBe(true);
    expect(decodePayload(MessageType.Broadcast, env.payload).topic).toBe("t");
    expect(Buffer.from(envelopeIdKey(bytes)!, "latin1").toString("hex")).toBe(BROADCAST_SIG.slice(0, 32));
  });

  it("envelope signature checks out with an independent verifier over the documented bytes", async () => {
    await sodiumWrappers.ready;
    const signed = Buffer.concat([
      Buffer.from("enjin/envelope/v1\0", "ascii"),
      Buffer.from("000a" + "000174" + "00000003010203" + "0000018bcfe56800", "hex"),
    ]);
    expect(
      sodiumWrappers.crypto_sign_verify_detached(
        Buffer.from(BROADCAST_SIG, "hex"),
        signed,
        Buffer.from(NODE_PK, "hex"),
      ),
    ).toBe(true);
  });

  it("frame", () => {
    const env = Buffer.from(ENVELOPE, "hex");
    expect(hex(encodeFrame([{ hops: 3, envelope: env }]))).toBe(FRAME);
    const items = decodeFrame(Buffer.from(FRAME, "hex"));
    expect(items[0]!.hops).toBe(3);
    expect(hex(items[0]!.envelope)).toBe(ENVELOPE);
  });

  it("certificate", () => {
    const bytes = issueCertificate(root, {
      subject: node.publicKey,
      issuer: root.publicKey,
      ring: 0,
      roles: ["node", "issuer"],
      compartment: ["eu"],
      tiers: [],
      serial: 7,
      notBeforeMs: 1_700_000_000_000,
      expiresMs: 1_800_000_000_000,
    });
    expect(hex(bytes)).toBe(CERTIFICATE);
    const cert = decodeCertificate(decodeEnvelope(bytes));
    expect(cert.serial).toBe(7);
    expect(keyHex(verifyChain(root.publicKey, [bytes], 1_750_000_000_000).subject)).toBe(NODE_PK);
  });

  it("membership sync: MemberDigest (full and summary), its set hash, and MemberWant", () => {
    const entries = [
      { node: node.publicKey, incarnation: 3 },
      { node: root.publicKey, incarnation: 7 },
    ];
    const hash = noticeSetHash(entries);
    // sha256("enjin/notice-set/v1\0" || key || u64 incarnation, per entry), first 16 bytes.
    const independent = createHash("sha256")
      .update("enjin/notice-set/v1\0")
      .update(Buffer.from(NODE_PK + "0000000000000003" + ROOT_PK + "0000000000000007", "hex"))
      .digest("hex");
    expect(hex(hash)).toBe(independent.slice(0, 32));
    expect(hex(hash)).toBe(NOTICE_SET_HASH);
    const digest = encodePayload(MessageType.MemberDigest, {
      summary: false,
      partial: false,
      held: 2,
      hash,
      entries,
    });
    expect(hex(sealEnvelope(node, MessageType.MemberDigest, digest))).toBe(MEMBER_DIGEST);
    const summary = { summary: true, partial: false, held: 2, hash, entries: [] };
    const summaryBytes = encodePayload(MessageType.MemberDigest, summary);
    expect(hex(sealEnvelope(node, MessageType.MemberDigest, summaryBytes))).toBe(MEMBER_SUMMARY);
    // A summary that lists entries, or an unknown flag, is refused.
    expect(() => encodePayload(MessageType.MemberDigest, { ...summary, entries })).toThrow(EncodeError);
    const unknownFlag = summaryBytes.slice();
    unknownFlag[0] = 0x04;
    expect(() => decodePayload(MessageType.MemberDigest, unknownFlag)).toThrow(SchemaError);
    const want = encodePayload(MessageType.MemberWant, {
      entries: [{ node: node.publicKey, incarnation: 3 }],
    });
    expect(hex(sealEnvelope(root, MessageType.MemberWant, want))).toBe(MEMBER_WANT);
    const env = decodeEnvelope(Buffer.from(MEMBER_DIGEST, "hex"));
    expect(verifyEnvelope(env)).toBe(true);
    expect(decodePayload(MessageType.MemberDigest, env.payload).entries.map((e) => e.incarnation)).toEqual([
      3, 7,
    ]);
  });

  it("membership sync: a digest whose entries are out of key order is refused", () => {
    const good = Buffer.from(MEMBER_DIGEST, "hex").subarray(39, 39 + 103);
    // Swap the two 40-byte entries: root's key (0x8a…) now comes before the node's (0x81…).
    const swapped = Buffer.concat([good.subarray(0, 23), good.subarray(63, 103), good.subarray(23, 63)]);
    expect(() => decodePayload(MessageType.MemberDigest, swapped)).toThrow(SchemaError);
  });
});
