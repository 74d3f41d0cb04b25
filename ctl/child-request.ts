/**
 * `ringctl child create`'s options, and the create request they make: one JSON object (strategy,
 * spec, restart policy, health checks), sent as the command's one argument. ringctl checks only what
 * it must to build the request (sizes, durations, JSON); the node checks the whole request against
 * its Supervisor and drivers, so a ringctl older or newer than the node never decides for it.
 */
import { MAX_ARG_BYTES } from "../protocol/index.ts";
import type { CommandContext, OptionSpec } from "./cli.ts";
import { UsageError } from "./errors.ts";
import { parseDuration } from "./ringctl-mesh.ts";

/** The options of `ringctl child create` beyond the selector. */
export const CREATE_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  strategy: {
    type: "string",
    valueName: "NAME",
    description: "How the child runs: proc, unix-user, jail or vm (required).",
  },
  env: {
    type: "string",
    multiple: true,
    valueName: "NAME=VALUE",
    description: "An environment variable.",
  },
  memory: {
    type: "string",
    valueName: "SIZE",
    description: "Memory limit, e.g. 256M or 1G (bytes without a suffix).",
  },
  pids: { type: "string", valueName: "N", description: "Most processes and threads." },
  cpu: {
    type: "string",
    valueName: "MILLIS",
    description: "CPU share in thousandths of a core (1000 = one core).",
  },
  "open-files": { type: "string", valueName: "N", description: "Most open files." },
  health: {
    type: "string",
    multiple: true,
    valueName: "CHECK",
    description:
      'A health check on the child\'s PORT: tcp, http:/PATH, exec:PROGRAM ARGS, or a JSON object such as {"kind": "http", "path": "/health", "intervalMs": 5000}.',
  },
  "restart-attempts": {
    type: "string",
    valueName: "N",
    description: "Restarts allowed per interval (default 5).",
  },
  "restart-interval": {
    type: "string",
    valueName: "DURATION",
    description: "The window restarts are counted in (default 5m).",
  },
  "restart-delay": {
    type: "string",
    valueName: "DURATION",
    description: "First backoff delay (default 1s), doubling each time.",
  },
  "restart-max-delay": {
    type: "string",
    valueName: "DURATION",
    description: "Longest backoff delay (default 1m).",
  },
  "restart-mode": {
    type: "string",
    valueName: "MODE",
    description:
      "When the attempts are used up: fail (give up and tell the ring, default) or delay (wait for the window).",
  },
  driver: {
    type: "string",
    valueName: "JSON",
    description: "Strategy settings as a JSON object (jail: roBinds; vm: kernel, initrd ...).",
  },
  stopped: { type: "boolean", description: "Create it without starting it." },
};

const UNITS: Readonly<Record<string, number>> = { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/** "256M", "1G", "1048576" as bytes (binary units). */
export function parseSize(text: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?$/i.exec(text.trim());
  const bytes = m === null ? Number.NaN : Math.round(Number(m[1]) * UNITS[m[2]!.toUpperCase()]!);
  if (!Number.isSafeInteger(bytes) || bytes < 1)
    throw new UsageError(`${what} "${text}" is not a size: use e.g. 256M, 1G or a number of bytes`);
  return bytes;
}

function wholeNumber(text: string, what: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n))
    throw new UsageError(`${what} must be a whole number, not "${text}"`);
  return n;
}

/** One --health value as a check object (the node checks its fields). */
export function parseHealth(text: string): Record<string, unknown> {
  const t = text.trim();
  if (t.startsWith("{")) {
    try {
      const parsed: unknown = JSON.parse(t);
      if (typeof parsed === "object" && parsed !== null && !Array.isArray(parsed))
        return parsed as Record<string, unknown>;
    } catch {
      // said below
    }
    throw new UsageError(`--health ${text}: not a JSON object`);
  }
  if (t === "tcp") return { kind: "tcp" };
  if (t.startsWith("http:")) return { kind: "http", path: t.slice("http:".length) || "/" };
  if (t.startsWith("exec:")) {
    const command = t.slice("exec:".length).trim().split(/\s+/).filter(Boolean);
    if (command.length > 0) return { kind: "exec", command };
  }
  throw new UsageError(`--health "${text}": use tcp, http:/PATH, exec:PROGRAM ARGS or a JSON object`);
}

const strings = (x: unknown): string[] =>
  Array.isArray(x) ? (x as string[]) : typeof x === "string" ? [x] : [];

/** The create request JSON for child `name` running `command`, from the options. */
export function createRequestFrom(ctx: CommandContext, name: string, command: readonly string[]): string {
  const v = ctx.values;
  const str = (key: string) => v[key] as string | undefined;
  const strategy = str("strategy");
  if (strategy === undefined) throw new UsageError("--strategy is required: proc, unix-user, jail or vm");
  const env: Record<string, string> = {};
  for (const pair of strings(v.env)) {
    const eq = pair.indexOf("=");
    if (eq < 1) throw new UsageError(`--env "${pair}" must be NAME=VALUE`);
    env[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  const limits: Record<string, number> = {};
  if (str("memory") !== undefined) limits.memoryBytes = parseSize(str("memory")!, "--memory");
  if (str("pids") !== undefined) limits.pids = wholeNumber(str("pids")!, "--pids");
  if (str("cpu") !== undefined) limits.cpuMillis = wholeNumber(str("cpu")!, "--cpu");
  if (str("open-files") !== undefined) limits.openFiles = wholeNumber(str("open-files")!, "--open-files");
  let driver: unknown;
  if (str("driver") !== undefined) {
    try {
      driver = JSON.parse(str("driver")!);
    } catch {
      driver = undefined;
    }
    if (typeof driver !== "object" || driver === null || Array.isArray(driver))
      throw new UsageError(`--driver must be a JSON object, e.g. '{"roBinds": ["/srv/app"]}'`);
  }
  const policy: Record<string, unknown> = {};
  if (str("restart-attempts") !== undefined)
    policy.attempts = wholeNumber(str("restart-attempts")!, "--restart-attempts");
  for (const [flag, field] of [
    ["restart-interval", "intervalMs"],
    ["restart-delay", "delayMs"],
    ["restart-max-delay", "maxDelayMs"],
  ] as const)
    if (str(flag) !== undefined) policy[field] = parseDuration(str(flag)!, `--${flag}`);
  if (str("restart-mode") !== undefined) policy.mode = str("restart-mode");
  const spec = {
    name,
    command: [...command],
    ...(Object.keys(env).length > 0 ? { env } : {}),
    ...(Object.keys(limits).length > 0 ? { limits } : {}),
    ...(driver === undefined ? {} : { driver }),
  };
  const request = JSON.stringify({
    strategy,
    spec,
    ...(Object.keys(policy).length > 0 ? { restartPolicy: policy } : {}),
    ...(v.health === undefined ? {} : { health: strings(v.health).map(parseHealth) }),
    ...(v.stopped === true ? { start: false } : {}),
  });
  if (Buffer.byteLength(request) > MAX_ARG_BYTES)
    throw new UsageError(
      `the request is ${Buffer.byteLength(request)} bytes as JSON; a command argument holds at most ${MAX_ARG_BYTES}: shorten the command, env or driver settings`,
    );
  return request;
}
