/**
 * `ringctl exec -- COMMAND...`: one signed exec command to every node a selector names, and each
 * node's signed answer, verified here (mesh-call.ts).
 */
import type { CommandSpec } from "./cli.ts";
import { ExitCode } from "./exit-codes.ts";
import { MESH_CALL_OPTIONS, meshCall, missingLines, shortNode } from "./mesh-call.ts";
import { parseDuration } from "./ringctl-mesh.ts";
import { selectorFrom } from "./selector-options.ts";

/** `ringctl exec -- COMMAND...`. */
export const execCommand: CommandSpec = {
  words: ["exec"],
  summary: "run a command on every node a selector names; print each node's signed answer",
  description:
    "Sign an exec command with the operator key (target selector, nonce, issue time, expiry), hand it " +
    "to the local ringd, which relays it unchanged into the mesh, and wait for the answers. Every " +
    "answer is a result signed by the node that ran the command; ringctl verifies each signature " +
    "itself. Nodes that membership expects but that did not answer in time are listed with their " +
    "state (unreachable, suspect, dead). Selectors combine: every given field must match.\n\n" +
    "Needs an operator or admin key: every node refuses exec from a viewer key (counted as " +
    "rejected:viewer-may-not-exec) and does not pass it on; a viewer may send only child list and " +
    "child logs.",
  options: MESH_CALL_OPTIONS,
  arguments: [
    {
      name: "COMMAND",
      description: "The program and its arguments, after --.",
      required: true,
      variadic: true,
    },
  ],
  jsonOutput:
    '{"id", "results": [{"node", "fingerprint", "exitCode", "stdout", "stderr", "truncated", "verified"}], "missing": [{"id", "state"}]}',
  exitCodes: [ExitCode.TargetFailed, ExitCode.Unreachable, ExitCode.Refused],
  examples: [
    {
      command: "ringctl exec --ring 1 --tier web -- uptime",
      description: "uptime on every ring-1 web node.",
    },
    { command: "ringctl exec --json -- hostname", description: "hostname everywhere, as JSON." },
  ],
  async run(ctx) {
    const selector = await selectorFrom(ctx, false);
    const waitMs = parseDuration((ctx.values.timeout as string | undefined) ?? "30s", "--timeout");
    const r = await meshCall(ctx, selector, "exec", ctx.positionals, waitMs, (progress) => {
      if (progress.sent === true) ctx.info(`sent to the mesh; waiting for ${progress.expected} node(s) ...`);
      else if (progress.retried !== undefined)
        ctx.info(`  ${progress.answered}/${progress.expected} answered; asked ${progress.retried} again`);
      else if (progress.answered !== undefined)
        ctx.info(`  ${progress.answered}/${progress.expected} answered`);
    });
    const results = r.results.map((x) => ({
      node: x.node,
      fingerprint: x.fingerprint,
      exitCode: x.exitCode,
      stdout: new TextDecoder().decode(x.stdout),
      stderr: new TextDecoder().decode(x.stderr),
      truncated: x.truncated,
      verified: true, // meshCall keeps only answers whose signature ringctl checked itself
    }));
    const { id, missing } = r;
    ctx.result({ id, results, missing }, () =>
      [
        ...results.flatMap((x) => [
          `== ${shortNode(x.fingerprint)}  exit ${x.exitCode}${x.truncated ? "  (output truncated)" : ""}`,
          ...(x.stdout ? [x.stdout.trimEnd()] : []),
          ...(x.stderr ? [x.stderr.trimEnd()] : []),
        ]),
        ...missingLines(r),
        `${results.length} answered, ${results.filter((x) => x.exitCode !== 0).length} failed, ${missing.length} missing`,
      ].join("\n"),
    );
    if (results.some((x) => x.exitCode !== 0)) return ExitCode.TargetFailed;
    return missing.length > 0 ? ExitCode.Unreachable : ExitCode.Ok;
  },
};
