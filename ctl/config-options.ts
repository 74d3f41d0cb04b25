/**
 * The daemon's configuration as command-line options: one option per field of CONFIG_FIELDS
 * (`--data-dir`, `--ring`, ...) plus `--config`, and the mapping back from parsed values to the
 * flags layer of loadConfig. ringd's commands that need the configuration spread these options.
 */
import { CONFIG_FIELDS, type ConfigField, type ConfigFlags } from "../agent/daemon/index.ts";
import type { OptionSpec, OptionValues } from "./cli.ts";

/** Option name of the config file path. */
export const CONFIG_FILE_OPTION = "config";

/** Options for every config field, plus --config, with help that names the ENJIN_* variable. */
export function configOptions(): Record<string, OptionSpec> {
  const options: Record<string, OptionSpec> = {
    [CONFIG_FILE_OPTION]: {
      type: "string",
      valueName: "FILE",
      env: "ENJIN_CONFIG",
      description: "Read the configuration from FILE instead of <dataDir>/ringd.json; FILE must exist.",
    },
  };
  for (const spec of Object.values(CONFIG_FIELDS)) {
    options[spec.flag] = {
      type: "string",
      valueName: spec.valueName,
      env: spec.env,
      description: `${spec.description} Allowed: ${spec.allowed}.`,
      ...(spec.multiple ? { multiple: true } : {}),
    };
  }
  return options;
}

/** The flags layer for loadConfig, from parsed option values (absent options stay absent). */
export function configFlagsFrom(values: OptionValues): { flags: ConfigFlags; configFile?: string } {
  const flags: Record<string, string | readonly string[]> = {};
  for (const [field, spec] of Object.entries(CONFIG_FIELDS) as [
    ConfigField,
    (typeof CONFIG_FIELDS)[ConfigField],
  ][]) {
    const value = values[spec.flag];
    if (typeof value === "string" || Array.isArray(value)) flags[field] = value as string | readonly string[];
  }
  const file = values[CONFIG_FILE_OPTION];
  return typeof file === "string" ? { flags, configFile: file } : { flags };
}
