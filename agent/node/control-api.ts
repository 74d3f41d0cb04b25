/**
 * The methods ringd serves on its control socket for ringctl. Parameters are outside input: each
 * is checked with a schema and refused with a named error. Operators' signatures are made by
 * ringctl, never here: `command.submit` and `trust.relay` carry envelopes signed elsewhere, and the
 * daemon only relays them (through the same checks as any received message).
 */
import * as v from "valibot";
import {
  decodeCertificate,
  decodeEnvelope,
  decodePayload,
  envelopeIdKey,
  fingerprint,
  keyHex,
  MessageType,
  messageIdKey,
} from "../../protocol/index.ts";
import type { ControlHandler } from "../daemon/control-socket.ts";
import { checkGrantable } from "./admit.ts";
import { retrySilent } from "./command-retry.ts";
import { selectorMatches } from "./commands.ts";
import type { Daemon } from "./daemon.ts";
import { checkLabels } from "./seed.ts";

/** The longest an exec waits for answers. */
export const MAX_COMMAND_WAIT_MS = 10 * 60_000;

/** A control call's parameters are not what the method takes. */
export class InvalidParamsError extends Error {
  override readonly name = "InvalidParamsError";
}

/** The relayed envelope was refused by this node's checks (reason as counted). */
export class RelayRefusedError extends Error {
  override readonly name = "RelayRefusedError";
}

/** This node cannot do what was asked (no issuer role, ...). */
export class NotAvailableError extends Error {
  override readonly name = "NotAvailableError";
}

function parse<T>(schema: v.GenericSchema<unknown, T>, params: unknown, method: string): T {
  const r = v.safeParse(schema, params ?? {});
  if (!r.success)
    throw new InvalidParamsError(
      `${method}: ${r.issues.map((i) => `${v.getDotPath(i) ?? "params"}: ${i.message}`).join("; ")}`,
    );
  return r.output;
}

const labels = v.pipe(v.array(v.string()), v.maxLength(32));
const tokenCreate = v.strictObject({
  ring: v.picklist([0, 1, 2]),
  tiers: v.optional(labels, []),
  compartment: v.optional(labels, []),
  ttlMs: v.pipe(v.number(), v.integer(), v.minValue(1_000)),
  uses: v.pipe(v.number(), v.integer(), v.minValue(1)),
});
const envelopeParam = v.strictObject({
  envelope: v.pipe(v.string(), v.maxLength(200_000), v.base64()),
  waitMs: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(MAX_COMMAND_WAIT_MS))),
});
const tokenId = v.strictObject({ id: v.pipe(v.string(), v.regex(/^[0-9a-f]{32}$/)) });
const keyParam = v.strictObject({ key: v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/)) });

/** The handlers, by method name. */
export function controlHandlers(daemon: Daemon): Record<string, ControlHandler> {
  const tokens = () => {
    if (daemon.tokens === undefined)
      throw new NotAvailableError("this node may not issue tokens (its certificate has no issuer role)");
    return daemon.tokens;
  };
  const bytesOf = (b64: string) => new Uint8Array(Buffer.from(b64, "base64"));
  return {
    status: () => ({
      ...daemon.info,
      members: daemon.node.membership.aliveCount(),
      counters: { ...daemon.counters.snapshot(), ...daemon.node.counters.snapshot() },
      transport: daemon.transport.counters(),
    }),
    nodes: () => ({
      meshId: daemon.info.meshId,
      nodes: nodesView(daemon).map(({ certificate, ...row }) => {
        if (certificate === null) return { ...row, certificate };
        const { raw: _raw, ...shown } = certificate;
        return { ...row, certificate: shown };
      }),
    }),
    "token.create": async (params) => {
      const p = parse(tokenCreate, params, "token.create");
      checkLabels("tier", p.tiers);
      checkLabels("compartment part", p.compartment);
      checkGrantable(daemon, p);
      const made = await tokens().create(p, Date.now());
      await daemon.store.appendAudit(
        "token-created",
        { id: made.info.id, scope: made.info.scope },
        Date.now(),
      );
      return made;
    },
    "token.list": async () => ({ tokens: await tokens().list() }),
    "token.revoke": async (params) => {
      const { id } = parse(tokenId, params, "token.revoke");
      return { id, revoked: await tokens().revoke(id, Date.now()) };
    },
    "trust.relay": (params) => {
      const { envelope } = parse(envelopeParam, params, "trust.relay");
      const bytes = bytesOf(envelope);
      const before = daemon.node.counters.snapshot();
      if (!daemon.node.relay(bytes)) throw new RelayRefusedError(`refused: ${newRejections(before, daemon)}`);
      return { accepted: true, id: envelopeIdKey(bytes) };
    },
    "trust.certificate": (params) => {
      const { key } = parse(keyParam, params, "trust.certificate");
      const env = daemon.certificates.get(key);
      if (env === undefined) throw new NotAvailableError(`this node holds no certificate for ${key}`);
      const c = decodeCertificate(decodeEnvelope(env));
      return {
        subject: key,
        issuer: keyHex(c.issuer),
        ring: c.ring,
        roles: c.roles,
        compartment: c.compartment,
        tiers: c.tiers,
        serial: c.serial,
        notBeforeMs: c.notBeforeMs,
        expiresMs: c.expiresMs,
        revoked: daemon.node.trust.isRevoked(key),
      };
    },
    // The give-ups this node heard of, newest first, as signed by the nodes that gave up (ringctl
    // verifies each one itself).
    "child.events": async () => ({ events: await daemon.childEvents.list() }),
    "command.submit": async (params, ctx) => {
      const { envelope, waitMs } = parse(envelopeParam, params, "command.submit");
      const bytes = bytesOf(envelope);
      const env = decodeEnvelope(bytes);
      if (env.type !== MessageType.Command)
        throw new InvalidParamsError("command.submit takes a Command envelope");
      const command = decodePayload(MessageType.Command, env.payload);
      const id = envelopeIdKey(bytes);
      const expected = nodesView(daemon).filter(
        (n) =>
          n.certificate !== null &&
          n.state !== "revoked" &&
          selectorMatches(command.selector, n.certificate.raw),
      );
      const answered = new Map<string, string>();
      let done: () => void = () => undefined;
      const finished = new Promise<void>((resolve) => {
        done = resolve;
      });
      const stop = daemon.listenResults((r) => {
        if (messageIdKey(r.result.commandId) !== id || answered.has(r.sender)) return;
        const b64 = Buffer.from(r.envelope).toString("base64");
        answered.set(r.sender, b64);
        ctx.progress({ result: b64, answered: answered.size, expected: expected.length });
        if (expected.every((n) => answered.has(n.id))) done();
      });
      try {
        const before = daemon.node.counters.snapshot();
        if (!daemon.node.relay(bytes))
          throw new RelayRefusedError(`the command was refused: ${newRejections(before, daemon)}`);
        ctx.progress({ sent: true, expected: expected.length });
        if (expected.length > 0) {
          const timer = setTimeout(done, waitMs ?? 30_000);
          // Whoever has not answered after a while is asked again, directly: a copy of the command
          // or a result lost on the way (a dropped frame, a relay that died) costs a retry, not an
          // answer (command-retry.ts).
          const stopRetries = retrySilent(
            daemon.node,
            bytes,
            () => expected.filter((n) => !answered.has(n.id)).map((n) => n.id),
            {
              onRetry: (sent) =>
                ctx.progress({ retried: sent, answered: answered.size, expected: expected.length }),
            },
          );
          ctx.signal.addEventListener("abort", () => done());
          await finished;
          clearTimeout(timer);
          stopRetries();
        }
      } finally {
        stop();
      }
      const views = nodesView(daemon);
      return {
        id,
        expected: expected.map((n) => n.id),
        results: [...answered.values()],
        missing: expected
          .filter((n) => !answered.has(n.id))
          .map((n) => ({
            id: n.id,
            name: n.fingerprint,
            state: views.find((x) => x.id === n.id)?.state ?? "unknown",
          })),
      };
    },
  };
}

function newRejections(before: Record<string, number>, daemon: Daemon): string {
  const after = daemon.node.counters.snapshot();
  const reasons = Object.keys(after).filter(
    (k) => (k.startsWith("rejected:") || k === "duplicate") && after[k] !== before[k],
  );
  return reasons.length === 0 ? "unknown reason" : reasons.map((k) => k.replace(/^rejected:/, "")).join(", ");
}

/** One row of `ringctl nodes`. */
interface NodeRow {
  readonly id: string;
  readonly fingerprint: string;
  readonly self: boolean;
  readonly addr: string;
  readonly state: string;
  readonly incarnation: number;
  readonly certificate: null | {
    readonly ring: number;
    readonly roles: readonly string[];
    readonly compartment: readonly string[];
    readonly tiers: readonly string[];
    readonly issuer: string;
    readonly expiresMs: number;
    readonly raw: import("../../protocol/index.ts").Certificate;
  };
}

function nodesView(daemon: Daemon): NodeRow[] {
  const now = Date.now();
  const certOf = (hex: string): NodeRow["certificate"] => {
    // Checked once by a trust store already (most are): no decoding per call, which `exec` makes too.
    let c = daemon.node.trust.certificate(hex) ?? daemon.childNetwork?.node.trust.certificate(hex);
    if (c === undefined) {
      const env = daemon.certificates.get(hex);
      if (env === undefined) return null;
      c = decodeCertificate(decodeEnvelope(env));
    }
    return {
      ring: c.ring,
      roles: c.roles,
      compartment: c.compartment,
      tiers: c.tiers,
      issuer: keyHex(c.issuer),
      expiresMs: c.expiresMs,
      raw: c,
    };
  };
  const rows: NodeRow[] = [
    {
      id: daemon.info.nodeKey,
      fingerprint: daemon.info.fingerprint,
      self: true,
      addr: daemon.info.address,
      state: "alive",
      incarnation: 0,
      certificate: certOf(daemon.info.nodeKey),
    },
  ];
  const listed = new Set([daemon.info.nodeKey]);
  // The members of the network this node sits on, then of the children's network it hosts.
  for (const network of [daemon.node, daemon.childNetwork?.node]) {
    for (const m of network?.membership.members() ?? []) {
      if (listed.has(m.id)) continue;
      listed.add(m.id);
      const trusted = network!.trust.isTrusted(m.id, now);
      rows.push({
        id: m.id,
        fingerprint: fingerprint(Buffer.from(m.id, "hex")),
        self: false,
        addr: m.addr,
        state: trusted ? m.state : "revoked",
        incarnation: m.incarnation,
        certificate: certOf(m.id),
      });
    }
  }
  // Nodes known only by their certificate: on a network this node does not sit on (a ring-1 node's
  // children, seen from a seed). Nobody here probes them: their state is "unknown".
  for (const hex of daemon.certificates.keys()) {
    const certificate = certOf(hex);
    if (listed.has(hex) || certificate === null || !certificate.roles.includes("node")) continue;
    if (certificate.ring <= daemon.selfCert.ring + 1) continue; // of our networks, yet no member
    listed.add(hex);
    rows.push({
      id: hex,
      fingerprint: fingerprint(Buffer.from(hex, "hex")),
      self: false,
      addr: "",
      state: daemon.node.trust.isTrusted(hex, now) ? "unknown" : "revoked",
      incarnation: 0,
      certificate,
    });
  }
  return rows;
}
