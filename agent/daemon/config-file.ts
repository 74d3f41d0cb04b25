/**
 * Writing the daemon's config file: what `ringd init` and `ringd join` record in
 * <dataDir>/ringd.json, so that a later `ringd start --data-dir DIR` alone runs the node as it
 * was set up. Everything the operator set (by flag, ENJIN_* variable or a --config file) is
 * recorded; defaults are not, so that a newer ringd's defaults still apply to what nobody chose.
 * Values are written as the file reads them back (config.ts): paths absolute, the child port
 * range as "FIRST-LAST".
 */
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { CONFIG_FILE_NAME, type ResolvedConfig } from "./config.ts";
import { CONFIG_FIELD_NAMES, type ConfigField } from "./config-fields.ts";
import { ConfigFileError } from "./errors.ts";

/** Mode of the config file: it names the node's files and addresses, so only its owner reads it. */
export const CONFIG_FILE_MODE = 0o600;

/**
 * The fields of `resolved` that were set rather than defaulted, as the config file holds them.
 * `dataDir` is never among them (the file is found through it), nor any field in `omit`.
 */
export function configFileValues(
  resolved: ResolvedConfig,
  omit: readonly ConfigField[] = [],
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const field of CONFIG_FIELD_NAMES) {
    if (field === "dataDir" || omit.includes(field) || resolved.sources[field] === "default") continue;
    const value = resolved.config[field];
    out[field] =
      field === "childPortRange"
        ? `${resolved.config.childPortRange.firstPort}-${resolved.config.childPortRange.lastPort}`
        : value;
  }
  return out;
}

/**
 * Merge `fields` into <dataDir>/ringd.json (created with CONFIG_FILE_MODE when absent): the
 * fields given replace those of the same name, the others stay. A file that is there but not a
 * JSON object is a ConfigFileError and is left as it is. Returns the file's path.
 */
export async function mergeConfigFile(dataDir: string, fields: Record<string, unknown>): Promise<string> {
  const path = join(dataDir, CONFIG_FILE_NAME);
  let text: string | undefined;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT")
      throw new ConfigFileError(`cannot read config file ${path}: ${(err as Error).message}`, { cause: err });
  }
  let current: unknown = {};
  try {
    if (text !== undefined) current = JSON.parse(text);
  } catch (err) {
    throw new ConfigFileError(
      `config file ${path} is not valid JSON: ${(err as Error).message}; fix or remove it`,
      {
        cause: err,
      },
    );
  }
  if (typeof current !== "object" || current === null || Array.isArray(current))
    throw new ConfigFileError(`config file ${path} must hold a JSON object; fix or remove it`);
  await writeFile(path, `${JSON.stringify({ ...current, ...fields }, null, 2)}\n`, {
    mode: CONFIG_FILE_MODE,
  });
  return path;
}
