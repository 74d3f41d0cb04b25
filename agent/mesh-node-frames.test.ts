/**
 * A frame's items are ingested in batches whose signatures are checked back to back (ingest-batch.ts);
 * these show that a node still takes a frame in as item-by-item ingest would: an Announce or a Revoke
 * changes what the items after it in the same frame are checked against, and a second copy of an
 * item is dropped as a duplicate.
 */
import { afterEach, describe, expect, it } from "vitest";
import {
  encodeFrame,
  encodePayload,
  envelopeIdKey,
  generateIdentity,
  issueCertificate,
  issueRevocation,
  MessageType,
  sealEnvelope,
} from "../protocol/index.ts";
import { createMesh, SIM_START_MS, type SimMesh } from "./simulation.ts";

let mesh: SimMesh | undefined;

afterEach(async () => {
  await mesh?.close();
  mesh = undefined;
});

const broadcast = (topic: string, sentAtMs: number) =>
  encodePayload(MessageType.Broadcast, { topic, data: new Uint8Array([1, 2, 3]), sentAtMs });

/** A mesh of three, settled, and a rogue endpoint that sends frames straight to node 0. */
async function setUp() {
  mesh = await createMesh({ nodes: 3, seed: 41 });
  mesh.run(1_000);
  const rogue = await mesh.net.memory()({ listen: "rogue" });
  const target = mesh.nodes[0]!;
  const send = (...envelopes: Uint8Array[]) =>
    rogue.send(target.addr, encodeFrame(envelopes.map((envelope) => ({ hops: 3, envelope }))));
  return { m: mesh, target, send };
}

describe("a frame of several items", () => {
  it("accepts an item from a key announced earlier in the same frame", async () => {
    const { m, target, send } = await setUp();
    const newcomer = generateIdentity(new Uint8Array(32).fill(0x4e));
    const announce = issueCertificate(m.root, {
      subject: newcomer.publicKey,
      issuer: m.root.publicKey,
      ring: 0,
      roles: ["node"],
      compartment: ["sim"],
      tiers: [],
      serial: 900,
      notBeforeMs: SIM_START_MS - 60_000,
      expiresMs: SIM_START_MS + 86_400_000,
    });
    const hello = sealEnvelope(newcomer, MessageType.Broadcast, broadcast("hello", m.clock.now()));
    expect(send(announce, hello)).toBeNull();
    m.run(100);
    expect(target.node.counters.get("rejected:unknown-sender")).toBe(0);
    expect(target.delivered.has(envelopeIdKey(hello)!)).toBe(true);
  });

  it("refuses an item from a key revoked earlier in the same frame", async () => {
    const { m, target, send } = await setUp();
    const member = m.nodes[2]!;
    const revoke = issueRevocation(m.root, {
      subject: member.identity.publicKey,
      issuer: m.root.publicKey,
      epoch: 1,
      atMs: m.clock.now(),
      reason: "compromised",
    });
    const after = sealEnvelope(member.identity, MessageType.Broadcast, broadcast("after", m.clock.now()));
    expect(send(revoke, after)).toBeNull();
    m.run(100);
    expect(target.node.trust.isRevoked(member.id)).toBe(true);
    expect(target.node.counters.get("rejected:revoked-sender")).toBeGreaterThanOrEqual(1);
    expect(target.delivered.has(envelopeIdKey(after)!)).toBe(false);
  });

  it("delivers an item sent twice in one frame once, verifying it once", async () => {
    const { m, target, send } = await setUp();
    const hello = sealEnvelope(
      m.nodes[1]!.identity,
      MessageType.Broadcast,
      broadcast("twice", m.clock.now()),
    );
    const acceptedBefore = target.node.counters.get("accepted");
    const duplicatesBefore = target.node.counters.get("duplicate");
    expect(send(hello, hello)).toBeNull();
    m.run(100);
    expect(target.delivered.has(envelopeIdKey(hello)!)).toBe(true);
    expect(target.node.counters.get("accepted") - acceptedBefore).toBe(1);
    expect(target.node.counters.get("duplicate") - duplicatesBefore).toBeGreaterThanOrEqual(1);
  });
});
