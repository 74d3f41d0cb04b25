/**
 * Telling an operator why the mesh refused a command it may not send. The local ringd refuses such a
 * command before relaying it (rings' commandRefusal, applied by every node's ingest) and says only
 * the counted reason; here ringctl looks up its key's roles and, when the rule is why, says which
 * actions this key may send and how to get the right — exit 4 (refused) either way.
 */
import { RemoteCallError } from "../agent/daemon/index.ts";
import { type Identity, keyHex, type Role } from "../protocol/index.ts";
import { commandRefusal, explainCommandRefusal } from "../rings/index.ts";
import type { CommandContext } from "./cli.ts";
import { connectDaemon } from "./daemon-client.ts";
import { CliError } from "./errors.ts";
import { ExitCode } from "./exit-codes.ts";

/** The operator's key may not send this action (its roles do not allow it). Exit 4. */
export class CommandNotPermittedError extends CliError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, ExitCode.Refused, options);
  }
}

/**
 * Run `submit` (a `command.submit` call for `action`, signed by `operator`); when the local ringd
 * refuses the command and the key's roles are why, throw CommandNotPermittedError saying what this
 * key may send. Any other failure is rethrown as it was.
 */
export async function explainingRefusal<T>(
  ctx: CommandContext,
  operator: Identity,
  action: string,
  submit: () => Promise<T>,
): Promise<T> {
  try {
    return await submit();
  } catch (err) {
    if (!(err instanceof RemoteCallError) || err.remoteName !== "RelayRefusedError") throw err;
    const roles = await rolesOf(ctx, keyHex(operator.publicKey));
    if (roles === undefined || commandRefusal(roles, action) === null) throw err;
    throw new CommandNotPermittedError(`${err.message}\n${explainCommandRefusal(roles, action)}`, {
      cause: err,
    });
  }
}

/** The roles the local ringd's certificate of `key` grants; undefined when it holds none. */
async function rolesOf(ctx: CommandContext, key: string): Promise<Role[] | undefined> {
  const client = await connectDaemon(ctx);
  try {
    const cert = (await client.call("trust.certificate", { key })) as { roles: Role[] };
    return cert.roles;
  } catch {
    return undefined; // no certificate there: the refusal's own reason says so
  } finally {
    client.close();
  }
}
