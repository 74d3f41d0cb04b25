/**
 * `ringctl child create|list|start|stop|restart|remove|logs|events`: the children nodes supervise.
 * Every verb but `events` is a signed command (child-mesh-call.ts) answered by each target node with
 * a signed result that ringctl verifies; `events` shows the give-ups the local node heard of, each
 * verified here against the signature of the node that gave up. Building a create request from the
 * command line is in child-request.ts; following logs in child-follow.ts.
 */
import { verifyChildEvent } from "../agent/node/child-protocol.ts";
import { portBlockText } from "../agent/supervise/ports.ts";
import { fingerprint, keyFromHex } from "../protocol/index.ts";
import { followChildLogs } from "./child-follow.ts";
import { childMeshCall, type MeshCallOutcome, refusalLines } from "./child-mesh-call.ts";
import { CREATE_OPTIONS, createRequestFrom } from "./child-request.ts";
import type { CommandContext, CommandSpec } from "./cli.ts";
import { DAEMON_OPTIONS } from "./daemon-client.ts";
import { UsageError } from "./errors.ts";
import { ExitCode } from "./exit-codes.ts";
import { MESH_CALL_OPTIONS, missingLines, shortNode } from "./mesh-call.ts";
import { call, parseDuration } from "./ringctl-mesh.ts";
import { selectorFrom } from "./selector-options.ts";

const NAME_ARGUMENT = { name: "NAME", description: "The child's name.", required: true };
const MESH_EXIT_CODES = [ExitCode.TargetFailed, ExitCode.Unreachable, ExitCode.Refused];
const RESULTS_JSON =
  '{"id", "results": [{"node", "fingerprint", "exitCode", ... the node\'s answer, or "error": {"name", "reason", "message"}}], "missing": [{"id", "state"}]}';

type Child = {
  name: string;
  strategy: string;
  phase: string;
  pid: number | null;
  port: number;
  /** Absent in answers of nodes from before port blocks: 1. */
  portCount?: number;
  restarts: number;
  health: string | null;
};

const waitOf = (ctx: CommandContext) =>
  parseDuration((ctx.values.timeout as string | undefined) ?? "30s", "--timeout");

/** Exit status of a round trip: a refusal beats a missing node. */
function exitOf(outcome: MeshCallOutcome, ctx: CommandContext): ExitCode {
  if (outcome.answers.length === 0 && outcome.missing.length === 0) {
    ctx.info("no node matches the selector: nothing was done");
    return ExitCode.TargetFailed;
  }
  if (outcome.answers.some((a) => a.exitCode !== 0)) return ExitCode.TargetFailed;
  return outcome.missing.length > 0 ? ExitCode.Unreachable : ExitCode.Ok;
}

/** Print the outcome (JSON, or `line` per answering node plus refusals and missing nodes). */
function report(
  ctx: CommandContext,
  outcome: MeshCallOutcome,
  line: (a: MeshCallOutcome["answers"][number]) => string[],
  header: string[] = [],
): ExitCode {
  const results = outcome.answers.map((a) => ({
    node: a.node,
    fingerprint: a.fingerprint,
    exitCode: a.exitCode,
    ...a.answer,
  }));
  const refused = refusalLines(outcome.answers);
  ctx.result({ id: outcome.id, results, missing: outcome.missing }, () =>
    [
      ...header,
      ...outcome.answers.filter((a) => a.exitCode === 0).flatMap(line),
      ...refused,
      ...missingLines(outcome),
    ].join("\n"),
  );
  if (!ctx.json) for (const r of refused) ctx.info(r.replace(/^!! /, "refused by "));
  return exitOf(outcome, ctx);
}

/** A child's PORT, or its whole block ("40100-40104") when it holds several. */
export const childPortsText = (c: { port: number; portCount?: number }) =>
  portBlockText(c.port, c.portCount ?? 1);

const CHILD_HEADER = "NODE                  NAME             STRATEGY  STATE    PID     PORT        RESTARTS";
const childLine = (node: string, c: Child) =>
  `${node.padEnd(20)}  ${c.name.padEnd(16)} ${c.strategy.padEnd(9)} ${c.phase.padEnd(8)} ${String(c.pid ?? "-").padEnd(7)} ${childPortsText(c).padEnd(11)} ${c.restarts}`;

/** `ringctl child create`. */
export const childCreateCommand: CommandSpec = {
  words: ["child", "create"],
  summary: "run a new supervised child on the target node(s)",
  description:
    "Sign a child.create command and send it to the nodes the selector names (at least one selector is " +
    "required). Each node checks the whole request before it changes anything — the strategy, the program, " +
    "its limits against what the machine can enforce, the name (and its user and directory), a free port in " +
    "its range — allocates the child a port (given to it as PORT), saves it, and starts it. When the first " +
    "start fails, the node undoes the creation and answers why. A refusal names its reason, e.g. " +
    "UnknownStrategyError, MissingBinaryError, NameTakenError, UnenforceableLimitError, PortRangeExhaustedError.\n\n" +
    "Strategies: proc (a plain process), unix-user (its own system user, rlimits and cgroups), jail " +
    "(bubblewrap namespaces; --driver '{\"roBinds\": [DIR]}' shows more of the host read-only) and vm (qemu; " +
    "--driver names kernel, initrd, guestPort ...). Needs an operator or admin key: every node refuses " +
    "child.create from a viewer key (rejected:viewer-may-not-child-create) and does not pass it on.",
  options: { ...MESH_CALL_OPTIONS, ...CREATE_OPTIONS },
  arguments: [
    NAME_ARGUMENT,
    {
      name: "COMMAND",
      description: "The program and its arguments, after --.",
      required: true,
      variadic: true,
    },
  ],
  jsonOutput: `${RESULTS_JSON}; an answer is {"child": {"name", "strategy", "port", "portCount", "phase", "pid", "restarts", "health", ...}}`,
  exitCodes: MESH_EXIT_CODES,
  examples: [
    {
      command:
        "ringctl child create web --node n1 --strategy unix-user --health http:/health --memory 256M -- node /srv/app.js",
      description: "An app as its own user on node n1, health-checked over HTTP on its PORT.",
    },
  ],
  async run(ctx) {
    const [name, ...command] = ctx.positionals as string[];
    const request = createRequestFrom(ctx, name!, command);
    const outcome = await childMeshCall(
      ctx,
      await selectorFrom(ctx, true),
      "child.create",
      [request],
      waitOf(ctx),
    );
    return report(ctx, outcome, (a) => {
      const c = a.answer.child as Child;
      return [
        `created ${c.name} on ${shortNode(a.fingerprint)}: ${c.strategy}, port ${childPortsText(c)}, pid ${c.pid ?? "-"} (${c.phase})`,
      ];
    });
  },
};

/** `ringctl child list`. */
export const childListCommand: CommandSpec = {
  words: ["child", "list"],
  summary: "list the children of every node the selector names (default: every node)",
  description:
    "Sign a child.list command (a viewer key is enough: list and logs are the commands a viewer may send) and show each " +
    "node's children: name, strategy, state (starting, running, backoff, stopping, stopped, failed), pid, " +
    "port (FIRST-LAST for a child holding a block of ports, such as a ringd child: see 'ringctl node create') " +
    "and automatic restarts.",
  options: MESH_CALL_OPTIONS,
  jsonOutput: `${RESULTS_JSON}; an answer is {"children": [{"name", "strategy", "port", "portCount", "phase", "health", "pid", "startedMs", "restarts", "restartAtMs", "gaveUp", "lastExit", "dir"}]}`,
  exitCodes: MESH_EXIT_CODES,
  examples: [
    { command: "ringctl child list", description: "Every child of every node." },
    { command: "ringctl child list --ring 1 --json", description: "Ring-1 nodes' children, as JSON." },
  ],
  async run(ctx) {
    const outcome = await childMeshCall(ctx, await selectorFrom(ctx, false), "child.list", [], waitOf(ctx));
    return report(
      ctx,
      outcome,
      (a) => {
        const children = a.answer.children as Child[];
        return children.length === 0
          ? [`${shortNode(a.fingerprint).padEnd(20)}  (no children)`]
          : children.map((c) => childLine(shortNode(a.fingerprint), c));
      },
      [CHILD_HEADER],
    );
  },
};

/** One of the verbs that act on a named child: start, stop, restart, remove. */
function childVerb(
  verb: "start" | "stop" | "restart" | "remove",
  summary: string,
  description: string,
): CommandSpec {
  return {
    words: ["child", verb],
    summary,
    description: `${description} Needs an operator or admin key (every node refuses it from a viewer key, counted as rejected:viewer-may-not-child-${verb}, and does not pass it on), and a selector naming the node(s).`,
    options: MESH_CALL_OPTIONS,
    arguments: [NAME_ARGUMENT],
    jsonOutput: `${RESULTS_JSON}; an answer is ${verb === "remove" ? '{"removed": NAME}' : '{"child": {...}} as child list shows it'}`,
    exitCodes: MESH_EXIT_CODES,
    examples: [
      { command: `ringctl child ${verb} web --node n1`, description: `${verb} child web on node n1.` },
    ],
    async run(ctx) {
      const name = ctx.positionals[0]!;
      const outcome = await childMeshCall(
        ctx,
        await selectorFrom(ctx, true),
        `child.${verb}`,
        [name],
        waitOf(ctx),
      );
      return report(ctx, outcome, (a) =>
        verb === "remove"
          ? [`removed ${name} from ${shortNode(a.fingerprint)}`]
          : [childLine(shortNode(a.fingerprint), a.answer.child as Child)],
      );
    },
  };
}

/** `ringctl child logs`. */
export const childLogsCommand: CommandSpec = {
  words: ["child", "logs"],
  summary: "print the end of a child's output, and with --follow what it writes next",
  description:
    "Sign a child.logs command and print the last lines the child wrote (stdout and stderr, from its " +
    "rotated log files too), at most 12 KiB per node. With --follow, keep asking each node every " +
    "--interval for what was written since (one signed command per node and interval, each audited like " +
    "any command: the mesh carries one signed result per command, so following is polling with a cursor " +
    "the node hands back) until Ctrl-C. What rotates out twice between two polls is missed. A viewer key is enough.",
  options: {
    ...MESH_CALL_OPTIONS,
    lines: { type: "string", valueName: "N", description: "How many lines (default 100)." },
    follow: {
      type: "boolean",
      short: "f",
      description: "Keep printing what the child writes, until Ctrl-C.",
    },
    interval: {
      type: "string",
      valueName: "DURATION",
      description: "With --follow: how often to ask (default 1s).",
    },
  },
  arguments: [NAME_ARGUMENT],
  jsonOutput: `${RESULTS_JSON}; an answer is {"text"}. With --follow, one JSON object per line: {"node", "fingerprint", "text"}`,
  exitCodes: [...MESH_EXIT_CODES, ExitCode.Interrupted],
  examples: [
    {
      command: "ringctl child logs web --node n1 --lines 20",
      description: "The last 20 lines of web on n1.",
    },
    { command: "ringctl child logs web --node n1 -f", description: "Follow web's output." },
  ],
  async run(ctx) {
    const lines = Number(ctx.values.lines ?? "100");
    if (!Number.isSafeInteger(lines) || lines < 1 || lines > 10_000)
      throw new UsageError(`--lines must be a whole number 1..10000, not "${ctx.values.lines}"`);
    const name = ctx.positionals[0]!;
    const selector = await selectorFrom(ctx, true);
    if (ctx.values.follow === true) return followChildLogs(ctx, selector, name, lines, waitOf(ctx));
    const outcome = await childMeshCall(
      ctx,
      selector,
      "child.logs",
      [name, JSON.stringify({ lines })],
      waitOf(ctx),
    );
    const many = outcome.answers.length > 1;
    return report(ctx, outcome, (a) => [
      ...(many ? [`== ${shortNode(a.fingerprint)}`] : []),
      String(a.answer.text).replace(/\n$/, ""),
    ]);
  },
};

/** `ringctl child events`. */
export const childEventsCommand: CommandSpec = {
  words: ["child", "events"],
  summary: "show the give-ups the local node heard of, each verified here",
  description:
    "When a node's restart policy gives up on a child, the node signs an event and broadcasts it; every " +
    "node of its ring and of its parent ring keeps the newest 100. This shows what the local ringd kept, " +
    "newest first, after verifying each event's signature against the key of the node that gave up. An " +
    "event that does not verify is left out and counted.",
  options: { ...DAEMON_OPTIONS },
  jsonOutput:
    '{"events": [{"node", "fingerprint", "child", "strategy", "reason", "restarts", "atMs", "receivedMs", "verified": true}], "unverified"}',
  exitCodes: [ExitCode.Unreachable, ExitCode.Refused],
  examples: [{ command: "ringctl child events --json", description: "Every kept give-up, as JSON." }],
  async run(ctx) {
    const r = await call(ctx, "child.events");
    const events: Record<string, unknown>[] = [];
    let unverified = 0;
    for (const e of r.events as { sender: string; data: string; receivedMs: number }[]) {
      try {
        const ev = verifyChildEvent(new Uint8Array(Buffer.from(e.data, "base64")), e.sender);
        const { version: _v, ...shown } = ev;
        events.push({
          ...shown,
          fingerprint: fingerprint(keyFromHex(ev.node)),
          receivedMs: e.receivedMs,
          verified: true,
        });
      } catch (err) {
        unverified++;
        ctx.info(`left out an event from ${e.sender}: ${(err as Error).message}`);
      }
    }
    ctx.result({ events, unverified }, () =>
      events.length === 0
        ? "no child events"
        : [
            "WHEN                      NODE                  CHILD            RESTARTS  REASON",
            ...events.map(
              (e) =>
                `${new Date(e.atMs as number).toISOString().padEnd(25)} ${shortNode(e.fingerprint as string).padEnd(21)} ${String(e.child).padEnd(16)} ${String(e.restarts).padEnd(9)} ${e.reason}`,
            ),
          ].join("\n"),
    );
    return ExitCode.Ok;
  },
};

/** Every `ringctl child` command. */
export const childCommands: readonly CommandSpec[] = [
  childCreateCommand,
  childListCommand,
  childVerb(
    "start",
    "start a stopped or failed child",
    "Start the child again; its restart history starts afresh.",
  ),
  childVerb(
    "stop",
    "stop a child and keep it stopped",
    "SIGTERM, then SIGKILL after 10 s; it stays stopped across ringd restarts.",
  ),
  childVerb(
    "restart",
    "stop a child and start it again",
    "Stop it if it runs, forget past failures, start it.",
  ),
  childVerb(
    "remove",
    "stop a child and remove everything of it",
    "Stop it, then remove its user, cgroups, directory, logs, port and record.",
  ),
  childLogsCommand,
  childEventsCommand,
];
