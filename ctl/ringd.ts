/**
 * ringd, the node daemon: its command list. For now `version`, `config show` (the merged
 * configuration and where each value came from) and the built-in `help`; `ringd start`, `init` and
 * `join` are added by their own files.
 */
import { CONFIG_FIELDS, type ConfigField, loadConfig, processHost } from "../agent/daemon/index.ts";
import type { CommandSpec, ProgramSpec } from "./cli.ts";
import { configFlagsFrom, configOptions } from "./config-options.ts";
import { ExitCode } from "./exit-codes.ts";
import { initCommand, joinCommand, startCommand } from "./ringd-node.ts";
import { versionCommand } from "./version.ts";

/** `ringd config show`: resolve the configuration as `ringd start` would, and print it. */
export const configShowCommand: CommandSpec = {
  words: ["config", "show"],
  summary: "print the configuration ringd would run with, and where each value came from",
  description:
    "Merge the configuration exactly as 'ringd start' does and print it, with the source of each " +
    "field. Precedence, highest first: command-line flags, ENJIN_* environment variables, the " +
    "config file (<dataDir>/ringd.json, or --config / ENJIN_CONFIG), built-in defaults.\n\n" +
    "Every value is validated. An invalid one is reported with its field, its source and what is " +
    "allowed, and the command exits 5.",
  options: configOptions(),
  jsonOutput:
    '{"file": PATH, "config": {FIELD: VALUE, ...}, "sources": {FIELD: "flag" | "env" | "file" | "default", ...}}',
  exitCodes: [ExitCode.Config],
  examples: [
    {
      command: "ringd config show",
      description: "Show the configuration from the environment and the file.",
    },
    {
      command: "ENJIN_RING=1 ringd config show --tier web --tier db --json",
      description: "Show it with ring 1 from the environment and two tiers from flags, as JSON.",
    },
  ],
  async run(ctx) {
    const { flags, configFile } = configFlagsFrom(ctx.values);
    const { config, sources, file } = await loadConfig({
      flags,
      ...(configFile !== undefined ? { configFile } : {}),
      env: ctx.io.env,
      host: processHost(),
    });
    ctx.result({ file, config, sources }, () => {
      const fields = Object.keys(CONFIG_FIELDS) as ConfigField[];
      const width = Math.max(...fields.map((f) => f.length));
      const lines = fields.map((f) => `${f.padEnd(width)}  ${JSON.stringify(config[f])}  (${sources[f]})`);
      return [`# config file: ${file}`, ...lines].join("\n");
    });
    return ExitCode.Ok;
  },
};

/** The ringd program. */
export const ringd: ProgramSpec = {
  name: "ringd",
  summary: "the enjin node daemon",
  description:
    "ringd runs one node of an enjin mesh: it plays ring 0, 1 or 2, talks to its peers over ZeroMQ " +
    "or NATS, supervises its children, and listens on a local control socket for ringctl. Its " +
    "configuration comes from flags, ENJIN_* environment variables, <dataDir>/ringd.json and " +
    "defaults, in that order of precedence (see 'ringd config show --help').",
  commands: [initCommand, startCommand, joinCommand, versionCommand("ringd"), configShowCommand],
};
