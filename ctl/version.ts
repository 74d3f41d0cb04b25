/**
 * The version of this build (from package.json) and the `version` command both binaries share.
 */
import { readFileSync } from "node:fs";
import { PROTOCOL_VERSION_MAX, PROTOCOL_VERSION_MIN } from "../protocol/index.ts";
import type { CommandSpec } from "./cli.ts";

/** The enjin release this build is, e.g. "0.1.0". */
export const ENJIN_VERSION: string = (
  JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }
).version;

/** The `version` result; fields are only ever added. */
export interface VersionInfo {
  /** The program's name: "ringd" or "ringctl". */
  readonly name: string;
  /** The enjin release. */
  readonly version: string;
  /** The wire protocol versions this build speaks. */
  readonly protocol: { readonly min: number; readonly max: number };
  /** The Node.js version running it. */
  readonly node: string;
}

/** The `version` command of program `name`. */
export function versionCommand(name: string): CommandSpec {
  return {
    words: ["version"],
    summary: `print the version of ${name} and the protocol versions it speaks`,
    description:
      `Print the enjin release ${name} belongs to, the range of wire protocol versions it speaks ` +
      "and the Node.js version running it. Two nodes can talk when their protocol ranges overlap.",
    jsonOutput:
      '{"name": "' +
      name +
      '", "version": "0.1.0", "protocol": {"min": 1, "max": 1}, "node": "v20.20.2"}. Fields are only ever added.',
    examples: [
      { command: `${name} version`, description: "Print the version on one line." },
      {
        command: `${name} version --json | jq -r .version`,
        description: "Print only the release, for scripts.",
      },
    ],
    run(ctx) {
      const info: VersionInfo = {
        name,
        version: ENJIN_VERSION,
        protocol: { min: PROTOCOL_VERSION_MIN, max: PROTOCOL_VERSION_MAX },
        node: process.version,
      };
      ctx.result(
        info,
        `${name} ${info.version} (protocol ${info.protocol.min}..${info.protocol.max}, node ${info.node})`,
      );
      return undefined;
    },
  };
}
