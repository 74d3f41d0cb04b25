/**
 * `ringctl node create`: self-hosting. The local ringd starts a ringd of the next ring as one of its
 * supervised children, mints a one-time token for it and hands it over in a file only the child can
 * read; the child joins by itself and shows in `ringctl nodes` under this node. The child is then an
 * ordinary child (`ringctl child list|stop|restart|remove`) and an ordinary node (`ringctl nodes`,
 * `exec`, `revoke`).
 */
import { parsePortRangeText, RemoteCallError } from "../agent/daemon/index.ts";
import {
  CHILD_NETWORK_PORT_OFFSET,
  JOIN_PORT_OFFSET,
  NATS_PORT_OFFSET,
  NATS_ROUTE_PORT_OFFSET,
  RINGD_PORT_BLOCK,
} from "../agent/node/ringd-ports.ts";
import type { CommandSpec } from "./cli.ts";
import { DAEMON_OPTIONS } from "./daemon-client.ts";
import { CliError, UsageError } from "./errors.ts";
import { ExitCode } from "./exit-codes.ts";
import { childPortsText } from "./ringctl-child.ts";
import { call, parseDuration } from "./ringctl-mesh.ts";

const list = (v: unknown): string[] =>
  Array.isArray(v) ? (v as string[]) : typeof v === "string" ? [v] : [];

/** The daemon's refusals that mean the request was wrong (exit 2) or the start failed (exit 1). */
const REQUEST_ERRORS = new Set([
  "RingdChildRequestError",
  "InvalidSpecError",
  "UnknownStrategyError",
  "NameTakenError",
  "UnenforceableLimitError",
]);
const START_ERRORS = new Set([
  "RingdChildStartError",
  "ChildStartError",
  "MissingBinaryError",
  "PortRangeExhaustedError",
]);

/** `ringctl node create`. */
export const nodeCreateCommand: CommandSpec = {
  words: ["node", "create"],
  summary: "start a ringd of the next ring as a supervised child of the local node; it joins by itself",
  description:
    "The local ringd (ring N, with the issuer role) creates a supervised child named NAME that runs this " +
    "same ringd as a ring-(N+1) node: it mints a one-use token scoped to ring N+1 and the tiers and " +
    "compartment given, writes it into the child's own directory (mode 0600; never on a command line), " +
    "and starts the child, which joins with it, stores its own key and certificate in its directory, and " +
    "deletes the token. Restarts (by the supervisor, or after this ringd restarts) need no token: the " +
    `child starts with its own key. The child is allocated a block of ${RINGD_PORT_BLOCK} consecutive ports from this ` +
    `node's range, PORT to PORT+${RINGD_PORT_BLOCK - 1}: it listens for peers on PORT, for joins on ` +
    `PORT+${JOIN_PORT_OFFSET} and, as a ring-1 node, for its ring-2 nodes on PORT+${CHILD_NETWORK_PORT_OFFSET} ` +
    `(PORT+${NATS_PORT_OFFSET} and PORT+${NATS_ROUTE_PORT_OFFSET} are a seed's NATS ports, unused by it); no ` +
    "other child gets any of them. --child-ports gives it a range of its own for its children, outside this " +
    "node's. It then shows in 'ringctl nodes' under this node, and in 'ringctl child list' as NAME.\n\n" +
    "Strategies as for 'ringctl child create': unix-user (its own system user; its children, run by it " +
    "with proc, share that user), jail, proc. A ring-1 ringd under unix-user or jail is not root and can " +
    "run its own children with the proc strategy only.",
  options: {
    ...DAEMON_OPTIONS,
    strategy: {
      type: "string",
      valueName: "NAME",
      description: "How the child runs: unix-user (default), jail, proc.",
    },
    "child-ports": {
      type: "string",
      valueName: "FIRST-LAST",
      description: "The ports the new node hands its own children; required, outside this node's range.",
    },
    tier: {
      type: "string",
      multiple: true,
      valueName: "TIER",
      description: "A tier of the new node (repeatable).",
    },
    compartment: {
      type: "string",
      multiple: true,
      valueName: "PART",
      description: "The new node's compartment, outermost first (repeatable); default this node's.",
    },
    "token-ttl": {
      type: "string",
      valueName: "DURATION",
      description: "How long its token waits for the first start (default 15m, at most 24h).",
    },
    "log-level": {
      type: "string",
      valueName: "LEVEL",
      description: "The new node's log level (default info).",
    },
  },
  arguments: [{ name: "NAME", description: "The child's name (also the new node's name).", required: true }],
  jsonOutput:
    '{"child": {"name", "strategy", "port", "portCount", "dir", "phase", "pid", ...}, "ring", "tokenId", "tokenExpiresMs"}',
  exitCodes: [ExitCode.TargetFailed, ExitCode.Unreachable, ExitCode.Refused],
  examples: [
    {
      command: "ringctl node create infra-1 --strategy unix-user --child-ports 21000-21099 --tier web",
      description: "A ring-1 web node as its own system user; its apps get ports 21000-21099.",
    },
  ],
  async run(ctx) {
    const name = ctx.positionals[0]!;
    const portsText = ctx.values["child-ports"];
    if (typeof portsText !== "string")
      throw new UsageError(
        "--child-ports FIRST-LAST is required: the ports the new node hands its own children",
      );
    const childPorts = parsePortRangeText(portsText);
    if (typeof childPorts !== "object")
      throw new UsageError(`--child-ports "${portsText}" is not FIRST-LAST (e.g. 21000-21099)`);
    const ttl = ctx.values["token-ttl"];
    const params = {
      name,
      strategy: (ctx.values.strategy as string | undefined) ?? "unix-user",
      childPorts,
      tiers: list(ctx.values.tier),
      ...(ctx.values.compartment !== undefined ? { compartment: list(ctx.values.compartment) } : {}),
      ...(typeof ttl === "string" ? { tokenTtlMs: parseDuration(ttl, "--token-ttl") } : {}),
      ...(typeof ctx.values["log-level"] === "string" ? { logLevel: ctx.values["log-level"] } : {}),
    };
    let r: Record<string, unknown>;
    try {
      r = await call(ctx, "node.create", params);
    } catch (err) {
      if (err instanceof RemoteCallError && REQUEST_ERRORS.has(err.remoteName))
        throw new CliError(`${err.remoteName}: ${err.message}`, ExitCode.Usage, { cause: err });
      if (err instanceof RemoteCallError && START_ERRORS.has(err.remoteName))
        throw new CliError(`${err.remoteName}: ${err.message}`, ExitCode.TargetFailed, { cause: err });
      throw err;
    }
    const c = r.child as {
      name: string;
      strategy: string;
      port: number;
      portCount?: number;
      pid: number | null;
      phase: string;
    };
    ctx.result(
      r,
      () =>
        `started ring-${r.ring} node ${c.name} (${c.strategy}, ports ${childPortsText(c)}, pid ${c.pid ?? "-"}, ${c.phase}); ` +
        `it joins with token ${String(r.tokenId).slice(0, 8)}…; see it with 'ringctl nodes'`,
    );
    return ExitCode.Ok;
  },
};

/** The node commands, for ctl/ringctl.ts. */
export const nodeCommands: readonly CommandSpec[] = [nodeCreateCommand];
