/**
 * How a ringctl command reaches the local ringd: the options that locate its control socket, and
 * connectDaemon, which finds the socket the way ringd does (flag > ENJIN_* > config file >
 * default) and connects. Failures are the control client's named errors, which runCli maps to
 * exit 3 (not running, timeout) or 4 (permission denied).
 */
import {
  CONFIG_FIELDS,
  type ConfigFlags,
  type ConfigHost,
  type ConnectControlOptions,
  type ControlClient,
  connectControl,
  loadConfig,
  processHost,
} from "../agent/daemon/index.ts";
import type { CommandContext, OptionSpec, OptionValues } from "./cli.ts";

/** Options every ringctl command that talks to ringd spreads into its own. */
export const DAEMON_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  [CONFIG_FIELDS.controlSocket.flag]: {
    type: "string",
    valueName: "PATH",
    env: CONFIG_FIELDS.controlSocket.env,
    description: "The control socket of the ringd to talk to (default: ringd's, <dataDir>/ringd.sock).",
  },
  [CONFIG_FIELDS.dataDir.flag]: {
    type: "string",
    valueName: "DIR",
    env: CONFIG_FIELDS.dataDir.env,
    description: "The data dir of the ringd to talk to, when --control-socket is not given.",
  },
};

/** The control socket path named by these option values, the environment and ringd's config. */
export async function resolveControlSocket(
  values: OptionValues,
  env: Readonly<Record<string, string | undefined>>,
  host: ConfigHost = processHost(),
): Promise<string> {
  const flags: ConfigFlags = {};
  const socket = values[CONFIG_FIELDS.controlSocket.flag];
  const dataDir = values[CONFIG_FIELDS.dataDir.flag];
  if (typeof socket === "string") flags.controlSocket = socket;
  if (typeof dataDir === "string") flags.dataDir = dataDir;
  const { config } = await loadConfig({ flags, env, host });
  return config.controlSocket;
}

/** Connect to the ringd this command's options and environment name. */
export async function connectDaemon(
  ctx: CommandContext,
  options: ConnectControlOptions = {},
): Promise<ControlClient> {
  return connectControl(await resolveControlSocket(ctx.values, ctx.io.env), options);
}
