/**
 * ringctl's mesh commands: `status`, `nodes`, `token create|list|revoke`, and what the signed ones
 * (`exec` in ringctl-exec.ts, `child ...`) share: the operator's key, which never leaves ringctl,
 * and `sealCommand`. The local ringd only relays a signed envelope, and every node checks it.
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { loadConfig, processHost } from "../agent/daemon/index.ts";
import { readKeyFile } from "../agent/store/key-file.ts";
import { encodePayload, type Identity, MessageType, type Selector, sealEnvelope } from "../protocol/index.ts";
import type { CommandContext, CommandSpec, OptionSpec } from "./cli.ts";
import { connectDaemon, DAEMON_OPTIONS } from "./daemon-client.ts";
import { CliError, UsageError } from "./errors.ts";
import { ExitCode } from "./exit-codes.ts";
import { nodeTree } from "./node-tree.ts";

/** The operator's key file option (shared by every command that signs). */
export const KEY_OPTION: Record<string, OptionSpec> = {
  key: {
    type: "string",
    valueName: "FILE",
    env: "ENJIN_OPERATOR_KEY",
    description: "The operator key to sign with (default <dataDir>/operator.key, made by 'ringd init').",
  },
};

/** How long `exec` waits for answers unless told (--timeout). */
export const DEFAULT_EXEC_TIMEOUT_MS = 30_000;
/** How long a command (sealCommand) stays valid after it is signed, beyond the wait. */
export const COMMAND_VALIDITY_SLACK_MS = 60_000;

/** `action(args)` for the nodes `selector` names, signed by `operator`, as `exec` and `child` send it. */
export function sealCommand(
  operator: Identity,
  selector: Selector,
  action: string,
  args: readonly string[],
  waitMs: number,
): Uint8Array {
  const now = Date.now();
  return sealEnvelope(
    operator,
    MessageType.Command,
    encodePayload(MessageType.Command, {
      selector,
      action,
      args: [...args],
      nonce: new Uint8Array(randomBytes(16)),
      issuedAtMs: now,
      expiresMs: now + waitMs + COMMAND_VALIDITY_SLACK_MS,
    }),
  );
}

/** Parse "30s", "2m", "1h", "500ms" or a plain number of seconds into milliseconds. */
export function parseDuration(text: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (m === null) throw new UsageError(`${what} "${text}" is not a duration: use e.g. 30s, 10m, 1h, 7d`);
  const unit = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] ?? "s"]!;
  return Math.round(Number(m[1]) * unit);
}

/** The operator's key: --key, ENJIN_OPERATOR_KEY, or <dataDir>/operator.key. */
export async function operatorKey(ctx: CommandContext): Promise<Identity> {
  let path = ctx.values.key as string | undefined;
  path ??= ctx.io.env.ENJIN_OPERATOR_KEY;
  if (path === undefined) {
    const dataDir = ctx.values["data-dir"];
    const { config } = await loadConfig({
      flags: typeof dataDir === "string" ? { dataDir } : {},
      env: ctx.io.env,
      host: processHost(),
    });
    path = join(config.dataDir, "operator.key");
  }
  const id = await readKeyFile(path);
  if (id === undefined)
    throw new CliError(
      `no operator key at ${path}: pass --key FILE, or make one with 'ringctl keygen --out FILE'`,
      ExitCode.Refused,
    );
  return id;
}

/** One call to the local ringd's control socket. */
export async function call(
  ctx: CommandContext,
  method: string,
  params: unknown = {},
  onProgress?: (p: unknown) => void,
): Promise<Record<string, unknown>> {
  const client = await connectDaemon(ctx);
  try {
    return (await client.call(method, params, onProgress)) as Record<string, unknown>;
  } finally {
    client.close();
  }
}

const list = (v: unknown): string[] =>
  Array.isArray(v) ? (v as string[]) : typeof v === "string" ? [v] : [];

/** `ringctl status`. */
export const statusCommand: CommandSpec = {
  words: ["status"],
  summary: "show the local node: mesh, key, ring, addresses, members, counters",
  description:
    "Ask the local ringd about itself. Counters include every refusal of outside input, by reason.",
  options: { ...DAEMON_OPTIONS },
  jsonOutput:
    '{"meshId", "nodeKey", "fingerprint", "ring", "name", "address", "joinAddress", "members", "counters", ...}',
  exitCodes: [ExitCode.Unreachable, ExitCode.Refused],
  examples: [{ command: "ringctl status --json", description: "The local node, as JSON." }],
  async run(ctx) {
    const s = await call(ctx, "status");
    ctx.result(s, () =>
      [
        `mesh       ${s.meshId}`,
        `node       ${s.fingerprint} (ring ${s.ring}, ${s.name})`,
        `address    ${s.address}`,
        `joins      ${s.joinAddress ?? "(this node does not issue)"}`,
        `members    ${s.members} alive`,
        ...Object.entries(s.counters as Record<string, number>)
          .filter(([k]) => k.startsWith("rejected:") || k.startsWith("join:"))
          .map(([k, n]) => `  ${k} ${n}`),
      ].join("\n"),
    );
    return ExitCode.Ok;
  },
};

/** `ringctl nodes`. */
export const nodesCommand: CommandSpec = {
  words: ["nodes"],
  summary: "list the mesh's nodes as the local ringd sees them: ring, state, compartment, tiers",
  description:
    "Every member the local node knows, with its state from membership (alive, suspect, dead, left, " +
    "revoked) and what its certificate says (ring, compartment, tiers), as a tree: each node is " +
    "indented under the node that certified it (its issuer), e.g. a ring-1 node under the seed " +
    "that started it. A ring-1 node also lists the members of the network it hosts for the ring-2 " +
    "nodes it certified; a node known only by its certificate (a ring-2 node seen from a seed) has " +
    "state unknown: nobody here probes it, and commands reach it through its issuer.",
  options: { ...DAEMON_OPTIONS },
  jsonOutput:
    '{"meshId", "nodes": [{"id", "fingerprint", "self", "addr", "state", "certificate": {"ring", "roles", "compartment", "tiers", "issuer", "expiresMs"} | null}]}',
  exitCodes: [ExitCode.Unreachable, ExitCode.Refused],
  examples: [{ command: "ringctl nodes", description: "The ring tree with states." }],
  async run(ctx) {
    const r = await call(ctx, "nodes");
    type Row = {
      id: string;
      fingerprint: string;
      self: boolean;
      state: string;
      addr: string;
      certificate: { ring: number; compartment: string[]; tiers: string[]; issuer: string } | null;
    };
    const placed = nodeTree(r.nodes as Row[]);
    ctx.result(r, () =>
      [
        "RING  STATE     NODE                      COMPARTMENT  TIERS",
        ...placed.map(
          ({ row: n, depth }) =>
            `${String(n.certificate?.ring ?? "?").padEnd(5)} ${n.state.padEnd(9)} ${("  ".repeat(depth) + n.fingerprint.slice(8, 28) + (n.self ? " *" : "")).padEnd(25)} ${(n.certificate?.compartment.join("/") || "-").padEnd(12)} ${n.certificate?.tiers.join(",") || "-"}`,
        ),
      ].join("\n"),
    );
    return ExitCode.Ok;
  },
};

/** `ringctl token create`. */
export const tokenCreateCommand: CommandSpec = {
  words: ["token", "create"],
  summary: "mint a one-time join token on the local ringd and print it",
  description:
    "The local node (which must have the issuer role, one ring above the ring asked for) stores only " +
    "a sealed hash of the token's secret, its scope, expiry and uses, and prints the token once: " +
    "hand it to the joining machine's 'ringd join'. The token names this node's join endpoint and " +
    "its key's fingerprint, so the joiner checks whom it talks to before it says anything.",
  options: {
    ...DAEMON_OPTIONS,
    ring: { type: "string", valueName: "N", description: "The ring the joiner will be (default 1)." },
    tier: {
      type: "string",
      multiple: true,
      valueName: "TIER",
      description: "A tier the joiner gets (repeatable).",
    },
    compartment: {
      type: "string",
      multiple: true,
      valueName: "PART",
      description: "The joiner's compartment, outermost first (repeatable).",
    },
    ttl: {
      type: "string",
      valueName: "DURATION",
      description: "How long the token is valid (default 1h; e.g. 30m, 24h).",
    },
    uses: { type: "string", valueName: "N", description: "How many joins it allows (default 1)." },
  },
  jsonOutput: '{"token", "info": {"id", "scope", "createdMs", "expiresMs", "uses", "usesLeft"}}',
  exitCodes: [ExitCode.Unreachable, ExitCode.Refused],
  examples: [
    {
      command: "ringctl token create --ring 1 --tier web --ttl 1h",
      description: "A token for one ring-1 web node.",
    },
  ],
  async run(ctx) {
    const ring = Number(ctx.values.ring ?? "1");
    if (![0, 1, 2].includes(ring)) throw new UsageError(`--ring must be 0, 1 or 2, not "${ctx.values.ring}"`);
    const uses = Number(ctx.values.uses ?? "1");
    if (!Number.isInteger(uses) || uses < 1)
      throw new UsageError(`--uses must be a whole number ≥ 1, not "${ctx.values.uses}"`);
    const ttlMs = parseDuration((ctx.values.ttl as string | undefined) ?? "1h", "--ttl");
    const r = await call(ctx, "token.create", {
      ring,
      tiers: list(ctx.values.tier),
      compartment: list(ctx.values.compartment),
      ttlMs,
      uses,
    });
    ctx.result(r, () => String(r.token));
    return ExitCode.Ok;
  },
};

/** `ringctl token list`. */
export const tokenListCommand: CommandSpec = {
  words: ["token", "list"],
  summary: "list the tokens the local ringd issued (never their secrets)",
  description: "Each token's id, scope, uses left, expiry and whether it was revoked.",
  options: { ...DAEMON_OPTIONS },
  jsonOutput: '{"tokens": [{"id", "scope", "createdMs", "expiresMs", "uses", "usesLeft", "revokedMs"}]}',
  exitCodes: [ExitCode.Unreachable, ExitCode.Refused],
  examples: [{ command: "ringctl token list", description: "Every token of this issuer." }],
  async run(ctx) {
    const r = await call(ctx, "token.list");
    type T = {
      id: string;
      scope: { ring: number; tiers: string[] };
      usesLeft: number;
      uses: number;
      expiresMs: number;
      revokedMs: number | null;
    };
    ctx.result(r, () =>
      [
        "ID                                RING  USES  EXPIRES                   STATE",
        ...(r.tokens as T[]).map(
          (t) =>
            `${t.id}  ${String(t.scope.ring).padEnd(4)}  ${`${t.usesLeft}/${t.uses}`.padEnd(4)}  ${new Date(t.expiresMs).toISOString().padEnd(24)}  ${t.revokedMs !== null ? "revoked" : t.expiresMs < Date.now() ? "expired" : t.usesLeft === 0 ? "used" : "valid"}`,
        ),
      ].join("\n"),
    );
    return ExitCode.Ok;
  },
};

/** `ringctl token revoke ID`. */
export const tokenRevokeCommand: CommandSpec = {
  words: ["token", "revoke"],
  summary: "revoke a token so that it can no longer be redeemed",
  description:
    "Takes effect at once on the issuing node. Joins already made are not undone ('ringctl revoke' does that).",
  options: { ...DAEMON_OPTIONS },
  arguments: [
    { name: "ID", description: "The token id, as 'ringctl token list' prints it.", required: true },
  ],
  jsonOutput: '{"id", "revoked"}',
  exitCodes: [ExitCode.TargetFailed, ExitCode.Unreachable, ExitCode.Refused],
  examples: [{ command: "ringctl token revoke 0123…", description: "Revoke one token." }],
  async run(ctx) {
    const r = await call(ctx, "token.revoke", { id: ctx.positionals[0] });
    ctx.result(r, () => (r.revoked ? `revoked ${r.id}` : `no token ${r.id}`));
    return r.revoked ? ExitCode.Ok : ExitCode.TargetFailed;
  },
};

/** Every mesh command of ringctl. */
export const meshCommands: readonly CommandSpec[] = [
  statusCommand,
  nodesCommand,
  tokenCreateCommand,
  tokenListCommand,
  tokenRevokeCommand,
];
