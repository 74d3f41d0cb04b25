/**
 * ringctl's trust commands: `keygen` (an operator's own key, which never leaves ringctl),
 * `operator add KEY --role R` (a certificate for another operator, signed here by an admin
 * operator's key) and `revoke NODE` (a revocation signed here). ringd only relays what is signed
 * here; every node checks the signer's authority itself.
 */
import { access } from "node:fs/promises";
import { dirname } from "node:path";
import { loadOrCreateKeyFile } from "../agent/store/key-file.ts";
import {
  fingerprint,
  issueCertificate,
  issueRevocation,
  keyFromHex,
  keyHex,
  MAX_LABEL_BYTES,
  type Role,
} from "../protocol/index.ts";
import type { CommandContext, CommandSpec } from "./cli.ts";
import { DAEMON_OPTIONS } from "./daemon-client.ts";
import { UsageError } from "./errors.ts";
import { ExitCode } from "./exit-codes.ts";
import { call, KEY_OPTION, operatorKey } from "./ringctl-mesh.ts";

/** Roles an operator certificate may carry. */
export const OPERATOR_ROLES: readonly Role[] = ["admin", "operator", "viewer"];
/** How long an operator certificate made by `operator add` is valid at most (1 year). */
export const OPERATOR_TTL_MS = 365 * 24 * 3_600_000;

/** `ringctl keygen --out FILE`. */
export const keygenCommand: CommandSpec = {
  words: ["keygen"],
  summary: "make an operator key pair in a new 0600 file and print its public key",
  description:
    "The private key stays in FILE (mode 0600) and is only ever used by ringctl to sign. Give the " +
    "printed public key to an admin, who certifies it with 'ringctl operator add KEY --role ROLE'. " +
    "An existing FILE is never overwritten.",
  options: {
    out: { type: "string", valueName: "FILE", description: "Where to write the new key (required)." },
  },
  jsonOutput: '{"file", "publicKey", "fingerprint"}',
  examples: [
    { command: "ringctl keygen --out ~/.config/enjin/operator.key", description: "A key for yourself." },
  ],
  async run(ctx) {
    const file = ctx.values.out;
    if (typeof file !== "string") throw new UsageError("keygen needs --out FILE: where to write the new key");
    const exists = await access(file).then(
      () => true,
      () => false,
    );
    if (exists)
      throw new UsageError(`${file} already exists; keygen never overwrites a key. Choose another --out`);
    await access(dirname(file)).catch(() => {
      throw new UsageError(`the directory of ${file} does not exist`);
    });
    const id = await loadOrCreateKeyFile(file);
    const out = { file, publicKey: keyHex(id.publicKey), fingerprint: fingerprint(id.publicKey) };
    ctx.result(out, () => `${out.publicKey}\n(${out.fingerprint}, private key in ${file})`);
    return ExitCode.Ok;
  },
};

async function certificateOf(ctx: CommandContext, key: string) {
  return (await call(ctx, "trust.certificate", { key })) as {
    expiresMs: number;
    notBeforeMs: number;
    roles: string[];
  };
}

/** `ringctl operator add KEY --role ROLE`. */
export const operatorAddCommand: CommandSpec = {
  words: ["operator", "add"],
  summary: "certify another operator's public key with a role; signed here by your admin key",
  description:
    "Issue a ring-0 operator certificate for KEY (64 hex characters, as 'ringctl keygen' prints it) " +
    "with ROLE: admin (everything, including certifying operators and revoking), operator (exec and " +
    "every child command) or viewer (only the commands that read: child list, child logs; nodes refuse " +
    "the rest from it). Your own key must be an admin's. The certificate is signed here and " +
    "gossiped through the local ringd to every node; it never outlives your own.",
  options: {
    ...DAEMON_OPTIONS,
    ...KEY_OPTION,
    role: { type: "string", valueName: "ROLE", description: "admin, operator or viewer (required)." },
  },
  arguments: [
    { name: "KEY", description: "The new operator's public key, 64 hex characters.", required: true },
  ],
  jsonOutput: '{"subject", "role", "expiresMs", "id"}',
  exitCodes: [ExitCode.Unreachable, ExitCode.Refused],
  examples: [
    { command: "ringctl operator add 3b6a…e1 --role operator", description: "Let someone run commands." },
  ],
  async run(ctx) {
    const role = ctx.values.role as Role | undefined;
    if (role === undefined || !OPERATOR_ROLES.includes(role))
      throw new UsageError(`--role must be one of ${OPERATOR_ROLES.join(", ")}`);
    const subject = String(ctx.positionals[0]).toLowerCase();
    if (!/^[0-9a-f]{64}$/.test(subject))
      throw new UsageError(`KEY must be 64 hex characters, as 'ringctl keygen' prints`);
    const admin = await operatorKey(ctx);
    const own = await certificateOf(ctx, keyHex(admin.publicKey));
    const now = Date.now();
    const cert = issueCertificate(admin, {
      subject: keyFromHex(subject),
      issuer: admin.publicKey,
      ring: 0,
      roles: [role],
      compartment: [],
      tiers: [],
      serial: now,
      notBeforeMs: Math.max(own.notBeforeMs, now - 5 * 60_000),
      expiresMs: Math.min(own.expiresMs, now + OPERATOR_TTL_MS),
    });
    const r = await call(ctx, "trust.relay", { envelope: Buffer.from(cert).toString("base64") });
    const out = { subject, role, expiresMs: Math.min(own.expiresMs, now + OPERATOR_TTL_MS), id: r.id };
    ctx.result(
      out,
      () =>
        `certified ${fingerprint(keyFromHex(subject))} as ${role} until ${new Date(out.expiresMs).toISOString()}`,
    );
    return ExitCode.Ok;
  },
};

/** `ringctl revoke NODE`. */
export const revokeCommand: CommandSpec = {
  words: ["revoke"],
  summary: "revoke a node's or an operator's key, at once, everywhere",
  description:
    "Sign a revocation of NODE with your admin key and gossip it through the local ringd. Every " +
    "node refuses the key's messages from then on, closes its connections, and keeps the " +
    "revocation on disk. NODE is a 64-hex key or a fingerprint (or a unique part of one, as " +
    "'ringctl nodes' prints it). Revocation cannot be undone: the node must join again with a " +
    "new key.",
  options: {
    ...DAEMON_OPTIONS,
    ...KEY_OPTION,
    reason: {
      type: "string",
      valueName: "TEXT",
      description: `Why, a label kept with the revocation (default "revoked"; at most ${MAX_LABEL_BYTES} characters of a-z 0-9 . _ -).`,
    },
  },
  arguments: [
    {
      name: "NODE",
      description: "The key, fingerprint or unique fingerprint part to revoke.",
      required: true,
    },
  ],
  jsonOutput: '{"subject", "id"}',
  exitCodes: [ExitCode.TargetFailed, ExitCode.Unreachable, ExitCode.Refused],
  examples: [
    { command: "ringctl revoke 7dpcrboipmtvr5tdbntu --reason stolen", description: "Cut off a node." },
  ],
  async run(ctx) {
    const admin = await operatorKey(ctx);
    const subject = await resolveNode(ctx, String(ctx.positionals[0]));
    const reason = (ctx.values.reason as string | undefined) ?? "revoked";
    const now = Date.now();
    const rev = issueRevocation(admin, {
      subject: keyFromHex(subject),
      issuer: admin.publicKey,
      epoch: now,
      atMs: now,
      reason,
    });
    const r = await call(ctx, "trust.relay", { envelope: Buffer.from(rev).toString("base64") });
    ctx.result({ subject, id: r.id }, () => `revoked ${fingerprint(keyFromHex(subject))}`);
    return ExitCode.Ok;
  },
};

/** A 64-hex key, or the one node whose fingerprint contains `text`. */
async function resolveNode(ctx: CommandContext, text: string): Promise<string> {
  if (/^[0-9a-f]{64}$/.test(text)) return text;
  const r = await call(ctx, "nodes");
  const nodes = r.nodes as { id: string; fingerprint: string }[];
  const part = text.replace(/^ed25519:/, "");
  const hits = nodes.filter((n) => n.fingerprint.includes(part));
  if (hits.length !== 1)
    throw new UsageError(
      hits.length === 0
        ? `no node's fingerprint contains "${text}"; 'ringctl nodes' lists them`
        : `"${text}" matches ${hits.length} nodes; give more of the fingerprint or the 64-hex key`,
    );
  return hits[0]!.id;
}

/** Every trust command of ringctl. */
export const trustCommands: readonly CommandSpec[] = [keygenCommand, operatorAddCommand, revokeCommand];
