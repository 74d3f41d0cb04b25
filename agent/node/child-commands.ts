/**
 * A node carrying out an operator's `child.*` command (child-protocol.ts) on its Supervisor. The
 * command reached here like any other: signature and chain checked, the sender's right to this
 * action checked by the mesh (rings' commandRefusal), not expired, not seen before, audited. Here the
 * same rule is applied again (a caller that did not come through ingest gets it too), the arguments
 * are checked against their schemas, and the Supervisor does the rest, refusing bad specs with its
 * named errors before it changes anything. Never throws: every outcome is a Result whose stdout is
 * one JSON object (bounded to fit the Result).
 */
import * as v from "valibot";
import { EnjinError, MAX_OUTPUT_BYTES, type Result, type Role } from "../../protocol/index.ts";
import { commandRefusal, explainCommandRefusal } from "../../rings/index.ts";
import type { CreateChildRequest, Supervisor } from "../supervise/index.ts";
import {
  type ChildAction,
  ChildExitCode,
  type ChildLogsAnswer,
  createArgsSchema,
  listArgsSchema,
  logsArgsSchema,
  MAX_LOG_ANSWER_BYTES,
  nameArgsSchema,
} from "./child-protocol.ts";

/** What a child command runs against. */
export interface ChildCommandContext {
  readonly supervisor: Supervisor;
  /** Roles of the operator who signed the command (from its certificate). */
  readonly senderRoles: readonly Role[];
}

const encoder = new TextEncoder();

/** The Result of a child command; `action` is one of CHILD_ACTIONS. */
export async function runChildCommand(
  action: ChildAction,
  args: readonly string[],
  commandId: Uint8Array,
  ctx: ChildCommandContext,
): Promise<Result> {
  const answer = (exitCode: number, value: unknown, note = ""): Result => {
    const stdout = encoder.encode(JSON.stringify(value));
    const truncated = stdout.length > MAX_OUTPUT_BYTES;
    return {
      commandId,
      exitCode,
      stdout: truncated ? encoder.encode(JSON.stringify(tooLarge(stdout.length))) : stdout,
      stderr: encoder.encode(note),
      truncated,
    };
  };
  const refuse = (exitCode: number, name: string, reason: string, message: string) =>
    answer(exitCode, { error: { name, reason, message } }, message);
  const refusal = commandRefusal(ctx.senderRoles, action);
  if (refusal !== null)
    return refuse(
      ChildExitCode.NotPermitted,
      "NotPermittedError",
      refusal,
      explainCommandRefusal(ctx.senderRoles, action),
    );
  try {
    return answer(ChildExitCode.Ok, await carryOut(action, args, ctx.supervisor));
  } catch (err) {
    if (err instanceof BadArgumentsError)
      return refuse(ChildExitCode.BadArguments, err.name, "bad-arguments", err.message);
    const e = err instanceof Error ? err : new Error(String(err));
    return refuse(ChildExitCode.Refused, e.name, err instanceof EnjinError ? err.reason : "error", e.message);
  }
}

/** The command's arguments do not match its action's schema. */
class BadArgumentsError extends Error {
  override readonly name = "BadArgumentsError";
}

function parseArgs<T>(schema: v.GenericSchema<unknown, T>, args: readonly string[], action: string): T {
  const r = v.safeParse(schema, args);
  if (!r.success)
    throw new BadArgumentsError(
      `${action}: ${r.issues.map((i) => `${v.getDotPath(i) ?? "args"}: ${i.message}`).join("; ")}`,
    );
  return r.output;
}

async function carryOut(
  action: ChildAction,
  args: readonly string[],
  supervisor: Supervisor,
): Promise<unknown> {
  switch (action) {
    case "child.list":
      parseArgs(listArgsSchema, args, action);
      return { children: supervisor.list() };
    case "child.create": {
      const [request] = parseArgs(createArgsSchema, args, action);
      // Shape-checked here; the Supervisor checks every field in full before it changes anything.
      return { child: await supervisor.create(request as unknown as CreateChildRequest) };
    }
    case "child.start":
    case "child.stop":
    case "child.restart":
    case "child.remove": {
      const [name] = parseArgs(nameArgsSchema, args, action);
      const verb = action.slice("child.".length) as "start" | "stop" | "restart" | "remove";
      await supervisor[verb](name);
      return verb === "remove" ? { removed: name } : { child: supervisor.get(name) };
    }
    case "child.logs": {
      const [name, what] = parseArgs(logsArgsSchema, args, action);
      // Escapes can make JSON text longer than the log bytes: ask for less until the answer fits.
      for (let maxBytes = MAX_LOG_ANSWER_BYTES; ; maxBytes = Math.floor(maxBytes / 2)) {
        let out: ChildLogsAnswer;
        if ("lines" in what) {
          // The end first: what is written while the tail is read then comes again, never not at all.
          const end = what.follow === true ? (await supervisor.readLogs(name, null, 0)).cursor : undefined;
          const text = await supervisor.logs(name, { lines: what.lines, maxBytes });
          out = end === undefined ? { text } : { text, cursor: end };
        } else {
          const read = await supervisor.readLogs(name, what.cursor, maxBytes);
          out = { text: read.bytes.toString("utf8"), cursor: read.cursor };
        }
        if (maxBytes <= 256 || encoder.encode(JSON.stringify(out)).length <= MAX_OUTPUT_BYTES) return out;
      }
    }
  }
}

function tooLarge(bytes: number) {
  const message = `the answer (${bytes} bytes of JSON) does not fit a result (${MAX_OUTPUT_BYTES}); ask for less`;
  return { error: { name: "AnswerTooLargeError", reason: "answer-too-large", message } };
}
