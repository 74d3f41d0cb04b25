/**
 * The per-action command rule on a simulated mesh: a viewer's read-only command reaches every member;
 * its `exec` is refused by the node it is handed to, counted by name, and not forwarded — no other
 * node hears of it — and every node refuses it the same way when handed it directly.
 */
import { afterEach, describe, expect, it } from "vitest";
import { createMesh, SIM_START_MS, type SimMesh } from "../../agent/index.ts";
import {
  encodePayload,
  envelopeIdKey,
  generateIdentity,
  type Identity,
  issueCertificate,
  keyHex,
  MessageType,
  type Role,
  sealEnvelope,
} from "../../protocol/index.ts";

const N = 20;
let mesh: SimMesh | undefined;
afterEach(async () => {
  await mesh?.close();
  mesh = undefined;
});

describe("per-action command rights on a simulated mesh", () => {
  it("a viewer's child.list reaches everyone; its exec is refused where it enters and goes no further", async () => {
    mesh = await createMesh({ nodes: N, seed: 7, latencyMs: 1, jitterMs: 2 });
    const m = mesh;
    const validity = { notBeforeMs: SIM_START_MS - 60_000, expiresMs: SIM_START_MS + 86_400_000 };
    const certify = (issuer: Identity, subject: Identity, roles: Role[], serial: number) =>
      m.certificates.set(
        keyHex(subject.publicKey),
        issueCertificate(issuer, {
          subject: subject.publicKey,
          issuer: issuer.publicKey,
          ring: 0,
          roles,
          compartment: [],
          tiers: [],
          serial,
          ...validity,
        }),
      );
    const admin = generateIdentity(new Uint8Array(32).fill(0xa1));
    const viewer = generateIdentity(new Uint8Array(32).fill(0x5e));
    certify(m.root, admin, ["node", "issuer", "admin"], 7_001);
    certify(admin, viewer, ["viewer"], 7_002);
    m.run(1_000);

    const delivered = new Map<number, string[]>(m.nodes.map((n) => [n.index, []]));
    for (const n of m.nodes) n.node.onCommand((c) => delivered.get(n.index)!.push(c.id));
    const now = m.clock.now();
    const command = (action: string, fill: number) =>
      sealEnvelope(
        viewer,
        MessageType.Command,
        encodePayload(MessageType.Command, {
          selector: {},
          action,
          args: action === "exec" ? ["id"] : [],
          nonce: new Uint8Array(16).fill(fill),
          issuedAtMs: now,
          expiresMs: now + 60_000,
        }),
      );
    const total = (counter: string) => m.nodes.reduce((sum, n) => sum + n.node.counters.get(counter), 0);

    const list = command("child.list", 1);
    expect(m.nodes[0]!.node.relay(list)).toBe(true);
    m.runUntil(() => [...delivered.values()].every((ids) => ids.length === 1), 10_000, 10);
    for (const ids of delivered.values()) expect(ids).toEqual([envelopeIdKey(list)]);

    const exec = command("exec", 2);
    expect(m.nodes[3]!.node.relay(exec)).toBe(false);
    expect(m.nodes[3]!.node.counters.get("rejected:viewer-may-not-exec")).toBe(1);
    m.run(3_000);
    expect(total("rejected:viewer-may-not-exec")).toBe(1); // nobody else was sent it
    for (const ids of delivered.values()) expect(ids).toHaveLength(1);

    // Handed to each node directly, each refuses it on its own, and still none runs it.
    for (const n of m.nodes) expect(n.node.relay(exec)).toBe(false);
    m.run(3_000);
    for (const n of m.nodes)
      expect(n.node.counters.get("rejected:viewer-may-not-exec")).toBe(n.index === 3 ? 2 : 1);
    for (const ids of delivered.values()) expect(ids).toHaveLength(1);
  });
});
