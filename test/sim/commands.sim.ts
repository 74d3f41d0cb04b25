/**
 * Signed operator commands on a simulated mesh: an operator's command, relayed unchanged by one
 * node, reaches every member; each answers with a result signed by itself; the results reach the
 * node where the operator waits. Node keys cannot command, and a command seen twice is delivered
 * once. A viewer key's read-only command reaches everyone; its exec is refused, counted, where it
 * enters and goes no further.
 */
import { afterEach, describe, expect, it } from "vitest";
import {
  COMMAND_RETRY_AFTER_MS,
  createMesh,
  type DeliveredResult,
  SIM_START_MS,
  type SimMesh,
} from "../../agent/index.ts";
import {
  encodePayload,
  envelopeIdKey,
  generateIdentity,
  type Identity,
  issueCertificate,
  keyHex,
  MessageType,
  messageIdFromKey,
  openEnvelope,
  type Role,
  type Selector,
  sealEnvelope,
} from "../../protocol/index.ts";

const N = 50;
let mesh: SimMesh | undefined;
afterEach(async () => {
  await mesh?.close();
  mesh = undefined;
});

/**
 * root → ring-0 admin → operator key with `roles`, published as the trust bundle would carry them;
 * the operator key.
 */
function certifyOperator(m: SimMesh, roles: Role[] = ["operator"]): Identity {
  const admin = generateIdentity(new Uint8Array(32).fill(0xad));
  const operator = generateIdentity(new Uint8Array(32).fill(roles.includes("operator") ? 0x0b : 0x5e));
  const validity = { notBeforeMs: SIM_START_MS - 60_000, expiresMs: SIM_START_MS + 86_400_000 };
  m.certificates.set(
    keyHex(admin.publicKey),
    issueCertificate(m.root, {
      subject: admin.publicKey,
      issuer: m.root.publicKey,
      ring: 0,
      roles: ["node", "issuer", "admin"],
      compartment: [],
      tiers: [],
      serial: 9_001,
      ...validity,
    }),
  );
  m.certificates.set(
    keyHex(operator.publicKey),
    issueCertificate(admin, {
      subject: operator.publicKey,
      issuer: admin.publicKey,
      ring: 0,
      roles,
      compartment: [],
      tiers: [],
      serial: 9_002,
      ...validity,
    }),
  );
  return operator;
}

/** An exec-style command signed by `signer`, valid for a minute from `now`. */
function signedCommand(
  signer: Identity,
  now: number,
  fields: { selector?: Selector; action?: string; args: string[]; nonceFill: number },
): Uint8Array {
  return sealEnvelope(
    signer,
    MessageType.Command,
    encodePayload(MessageType.Command, {
      selector: fields.selector ?? {},
      action: fields.action ?? "exec",
      args: fields.args,
      nonce: new Uint8Array(16).fill(fields.nonceFill),
      issuedAtMs: now,
      expiresMs: now + 60_000,
    }),
  );
}

describe("signed commands on a simulated mesh", () => {
  it("an operator's command reaches every member once and every signed result comes back", async () => {
    mesh = await createMesh({ nodes: N, seed: 21, latencyMs: 1, jitterMs: 2 });
    const m = mesh;
    const operator = certifyOperator(m);
    m.run(1_000);

    const commandsSeen = new Map<number, string[]>();
    for (const n of m.nodes) {
      commandsSeen.set(n.index, []);
      n.node.onCommand((c) => {
        commandsSeen.get(n.index)!.push(c.id);
        n.node.publishResult({
          commandId: messageIdFromKey(c.id),
          exitCode: 0,
          stdout: new TextEncoder().encode(`node ${n.index}`),
          stderr: new Uint8Array(),
          truncated: false,
        });
      });
    }
    const results: DeliveredResult[] = [];
    m.nodes[0]!.node.onResult((r) => results.push(r));

    const now = m.clock.now();
    const command = signedCommand(operator, now, { selector: { ring: 0 }, args: ["uptime"], nonceFill: 1 });
    const commandId = envelopeIdKey(command)!;
    expect(m.nodes[0]!.node.relay(command)).toBe(true);
    expect(m.nodes[0]!.node.relay(command)).toBe(false); // the same bytes again: a duplicate
    m.runUntil(() => results.length === N, 10_000, 10);

    for (const [, ids] of commandsSeen) expect(ids).toEqual([commandId]);
    expect(new Set(results.map((r) => r.sender)).size).toBe(N);
    // Results went back up the tree the command's first arrivals formed, not to everyone: every
    // node but the origin sent its own result up at least once, and nobody fell back to gossip.
    const total = (k: string) => m.nodes.reduce((sum, n) => sum + n.node.counters.get(k), 0);
    expect(total("results-gossiped")).toBe(0);
    expect(total("results-routed")).toBeGreaterThanOrEqual(N - 1);
    // A result arriving again is a duplicate, dropped before its signature is checked.
    const duplicatesBefore = m.nodes[0]!.node.counters.get("duplicate");
    expect(m.nodes[0]!.node.relay(results[1]!.envelope)).toBe(false);
    expect(m.nodes[0]!.node.counters.get("duplicate")).toBe(duplicatesBefore + 1);
    for (const r of results) {
      // Each result verifies on its own, signed by the node that ran the command.
      const env = openEnvelope(r.envelope);
      expect(keyHex(env.sender)).toBe(r.sender);
      expect(new TextDecoder().decode(r.result.stdout)).toMatch(/^node \d+$/);
    }

    // A node key may not command: every member refuses it, counted.
    const rogueCommand = signedCommand(m.nodes[5]!.identity, now, { args: ["rm", "-rf", "/"], nonceFill: 2 });
    expect(m.nodes[9]!.node.relay(rogueCommand)).toBe(false);
    expect(m.nodes[9]!.node.counters.get("rejected:not-an-operator")).toBe(1);
    m.run(2_000);
    for (const [, ids] of commandsSeen) expect(ids).toEqual([commandId]);
  });

  it("a result lost on its way up comes back when the waiting node asks again", async () => {
    const n = 10;
    mesh = await createMesh({ nodes: n, seed: 22, latencyMs: 1, jitterMs: 2 });
    const m = mesh;
    const operator = certifyOperator(m);
    m.run(1_000);
    const origin = m.nodes[0]!;
    const lossy = m.nodes[7]!;
    const setLinks = (down: boolean) => {
      for (const x of m.nodes) if (x !== lossy) m.net.setLink(lossy.addr, x.addr, { down });
    };
    for (const x of m.nodes) {
      x.node.onCommand((c) => {
        // The lossy node's links are down while it answers: its result is sent up and lost.
        if (x === lossy) setLinks(true);
        x.node.publishResult({
          commandId: messageIdFromKey(c.id),
          exitCode: 0,
          stdout: new TextEncoder().encode(`node ${x.index}`),
          stderr: new Uint8Array(),
          truncated: false,
        });
      });
    }
    const answered = new Set<string>();
    origin.node.onResult((r) => answered.add(r.sender));
    const now = m.clock.now();
    const command = signedCommand(operator, now, { args: ["true"], nonceFill: 3 });
    expect(origin.node.relay(command)).toBe(true);
    m.run(20);
    setLinks(false); // back up at once: only the frames of those 20 ms were lost
    m.run(COMMAND_RETRY_AFTER_MS * 3);
    // Everyone else answered; the lossy node's answer never arrived and nothing resends it unasked.
    expect(answered.size).toBe(n - 1);
    expect(answered.has(lossy.node.id)).toBe(false);
    expect(lossy.node.counters.get("results-resent")).toBe(0);

    // Asked again, directly: the lossy node does not run the command twice, it sends its answer again.
    expect(origin.node.retryCommand(command, [lossy.node.id])).toBe(1);
    m.runUntil(() => answered.size === n, 2_000, 5);
    expect(answered.has(lossy.node.id)).toBe(true);
    expect(lossy.node.counters.get("results-resent")).toBe(1);
    expect(origin.node.counters.get("commands-retried")).toBe(1);
  });

  it("a viewer's child.list reaches everyone; its exec is refused where it enters and goes no further", async () => {
    const n = 20;
    mesh = await createMesh({ nodes: n, seed: 7, latencyMs: 1, jitterMs: 2 });
    const m = mesh;
    const viewer = certifyOperator(m, ["viewer"]);
    m.run(1_000);
    const delivered = new Map<number, string[]>(m.nodes.map((x) => [x.index, []]));
    for (const x of m.nodes) x.node.onCommand((c) => delivered.get(x.index)!.push(c.id));
    const now = m.clock.now();
    const command = (action: string, fill: number) =>
      signedCommand(viewer, now, { action, args: action === "exec" ? ["id"] : [], nonceFill: fill });
    const refused = (x: (typeof m.nodes)[number]) => x.node.counters.get("rejected:viewer-may-not-exec");

    const list = command("child.list", 4);
    expect(m.nodes[0]!.node.relay(list)).toBe(true);
    m.runUntil(() => [...delivered.values()].every((ids) => ids.length === 1), 10_000, 10);
    for (const ids of delivered.values()) expect(ids).toEqual([envelopeIdKey(list)]);

    const exec = command("exec", 5);
    expect(m.nodes[3]!.node.relay(exec)).toBe(false);
    m.run(3_000);
    // Counted where it entered, and no other node was sent it.
    for (const x of m.nodes) expect(refused(x)).toBe(x.index === 3 ? 1 : 0);
    for (const ids of delivered.values()) expect(ids).toHaveLength(1);

    // Handed to each node directly, each refuses it on its own, and still none runs it.
    for (const x of m.nodes) expect(x.node.relay(exec)).toBe(false);
    m.run(3_000);
    for (const x of m.nodes) expect(refused(x)).toBe(x.index === 3 ? 2 : 1);
    for (const ids of delivered.values()) expect(ids).toHaveLength(1);
  });
});
