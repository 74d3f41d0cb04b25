/**
 * `ringctl child logs --follow`: the mesh carries exactly one signed result per signed command, so a
 * follow is a poll. The first command asks every target node for the last lines and the cursor at the
 * end of the log; then each node that has the child is asked, every --interval, for what was written
 * since its cursor (a command of its own, signed and audited like any), and hands back the next
 * cursor. Polling keeps every read authorized and verified end to end and needs no new message type
 * or open stream through relays; the cost is one small command and result per node and interval, and
 * output arrives up to one interval late. Ends on Ctrl-C (exit 130), or when no node has the child.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { keyFromHex, type Selector } from "../protocol/index.ts";
import { childMeshCall, refusalLines } from "./child-mesh-call.ts";
import type { CommandContext } from "./cli.ts";
import { ExitCode } from "./exit-codes.ts";
import { missingLines, shortNode } from "./mesh-call.ts";
import { parseDuration } from "./ringctl-mesh.ts";

/** Follow child `name` on the nodes `selector` names; resolves with the exit code. */
export async function followChildLogs(
  ctx: CommandContext,
  selector: Selector,
  name: string,
  lines: number,
  waitMs: number,
): Promise<ExitCode> {
  const intervalMs = parseDuration((ctx.values.interval as string | undefined) ?? "1s", "--interval");
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    const first = await childMeshCall(
      ctx,
      selector,
      "child.logs",
      [name, JSON.stringify({ lines, follow: true })],
      waitMs,
    );
    for (const line of [...refusalLines(first.answers), ...missingLines(first)]) ctx.info(line);
    const many = first.answers.length > 1;
    const emit = (node: string, fp: string, text: string) => {
      if (text === "") return;
      if (ctx.json) ctx.result({ node, fingerprint: fp, text }, text);
      else ctx.io.stdout.write(many ? prefixed(shortNode(fp), text) : text); // as written, partial lines too
    };
    const cursors = new Map<string, { fingerprint: string; cursor: unknown }>();
    for (const a of first.answers.filter((x) => x.exitCode === 0)) {
      emit(a.node, a.fingerprint, String(a.answer.text));
      cursors.set(a.node, { fingerprint: a.fingerprint, cursor: a.answer.cursor });
    }
    while (cursors.size > 0 && !stop.signal.aborted) {
      try {
        await sleep(intervalMs, undefined, { signal: stop.signal });
      } catch {
        break; // interrupted
      }
      for (const [node, at] of cursors) {
        const only: Selector = { nodes: [keyFromHex(node)] };
        const args = [name, JSON.stringify({ cursor: at.cursor })];
        const r = await childMeshCall(ctx, only, "child.logs", args, waitMs, false);
        const a = r.answers[0];
        if (a === undefined) {
          ctx.info(`${shortNode(at.fingerprint)}: no answer this time; asking again`);
        } else if (a.exitCode !== 0) {
          for (const line of refusalLines([a])) ctx.info(line);
          cursors.delete(node); // the child is gone there (removed?)
        } else {
          emit(node, a.fingerprint, String(a.answer.text));
          cursors.set(node, { fingerprint: at.fingerprint, cursor: a.answer.cursor });
        }
      }
    }
    if (stop.signal.aborted) return ExitCode.Interrupted;
    ctx.info(`no node has a child named ${name} to follow`);
    return ExitCode.TargetFailed;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

function prefixed(node: string, text: string): string {
  const ended = text.endsWith("\n");
  const lines = (ended ? text.slice(0, -1) : text).split("\n").map((l) => `${node}  ${l}`);
  return `${lines.join("\n")}\n`;
}
