/**
 * Running this checkout's `ringd` and `ringctl` as real processes, for `npm run mesh`, the mesh
 * benchmark and the integration tests: one place that knows how the binaries are started, waits
 * for a daemon to be ready, and stops what it started.
 *
 * The built JavaScript (`npm run build` → dist/ctl/bin/*.js) is run when it is at least as new as
 * every source file it is built from; otherwise the TypeScript sources run under tsx, so a test
 * never runs code older than the tree it is testing. `runner: "dist"` insists on the build (and
 * throws when it is missing or stale), `runner: "tsx"` insists on the sources.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { connectControl } from "../agent/daemon/index.ts";
import { shebangOptions } from "../agent/node/self-host-launcher.ts";

/** The repository root. */
export const REPO_ROOT = join(import.meta.dirname, "..");
/** Written last by `npm run build` (scripts/dist-manifest.ts): the build's time stamp. */
const BUILD_STAMP = join("dist", "package.json");

/** The two binaries. */
export type RingdBin = "ringd" | "ringctl";
/** How they run: the built JavaScript, or the TypeScript sources under tsx. */
export type Runner = "dist" | "tsx";

/** A finished process. `code` is -1 when it was killed or could not start. */
export interface Ran {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Why the build is not usable, or undefined when dist/ is built and fresh: every source file the
 * build compiled (the modules ringd and ringctl import, tsconfig.build.json) is older than the
 * build's stamp, and so are package.json and the tsconfig files.
 */
export function staleBuildReason(root = REPO_ROOT): string | undefined {
  const stamp = join(root, BUILD_STAMP);
  if (!existsSync(stamp)) return "no build (run npm run build)";
  const builtMs = statSync(stamp).mtimeMs;
  const changed = (path: string) => existsSync(path) && statSync(path).mtimeMs > builtMs;
  for (const file of ["package.json", "tsconfig.json", "tsconfig.build.json"])
    if (changed(join(root, file))) return `${file} changed after the build`;
  const dist = join(root, "dist");
  const walk = (dir: string): string | undefined => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        const found = walk(path);
        if (found !== undefined) return found;
      } else if (entry.name.endsWith(".js")) {
        const source = join(root, relative(dist, path)).replace(/\.js$/, ".ts");
        if (changed(source)) return source;
      }
    }
    return undefined;
  };
  const source = walk(dist);
  return source === undefined ? undefined : `${relative(root, source)} changed after the build`;
}

/** Options of RingdProcesses. */
export interface RingdProcessesOptions {
  /** "auto" (default): dist when built and fresh, else tsx. */
  readonly runner?: Runner | "auto";
  /**
   * Node options for every ringd and ringctl, in place of those the binary's shebang line gives
   * node (`#!/usr/bin/env -S node FLAGS`), which are used by default so that these processes run
   * as the installed binary does.
   */
  readonly nodeOptions?: readonly string[];
  readonly root?: string;
}

/**
 * A command that runs node in its place, e.g. `["ip", "netns", "exec", NS]` to run a ringd inside
 * a network namespace. It must exec node in place (so that signals and the pid are node's).
 */
export interface Prefixed {
  readonly prefix?: readonly string[];
}

/** Where a background process's output goes (default: stdout ignored, stderr to a pipe). */
export interface SpawnStdio extends Prefixed {
  readonly stdout?: "pipe" | "ignore";
  readonly stderr?: "pipe" | "inherit";
}

/** Options of a run to completion. */
export interface RunOptions extends Prefixed {
  /** Kill it after this long (default 120,000 ms). */
  readonly timeoutMs?: number;
}

/** Options of a wait for a daemon. */
export interface ReadyOptions {
  /** Give up after this long (default 120,000 ms). */
  readonly timeoutMs?: number;
  /** Between attempts (default 10 ms). */
  readonly intervalMs?: number;
}

/** Options of `start`: where it runs, where its output goes, how long it may take to answer. */
export interface StartOptions extends SpawnStdio, ReadyOptions {
  /**
   * Called with each piece of the daemon's stderr, from its first byte (e.g. to keep its log); not
   * with `stderr: "inherit"`.
   */
  readonly onStderr?: (chunk: string) => void;
}

/** Every process a run starts, so that all of them are stopped at the end. */
export class RingdProcesses {
  /** How ringd and ringctl run here. */
  readonly runner: Runner;
  /** Why (e.g. "dist is built and fresh", or what made it stale). */
  readonly reason: string;
  readonly root: string;
  readonly #nodeOptions: readonly string[] | undefined;
  readonly #children = new Set<ChildProcess>();
  readonly #stderrTail = new Map<ChildProcess, string>();

  constructor(options: RingdProcessesOptions = {}) {
    this.root = options.root ?? REPO_ROOT;
    this.#nodeOptions = options.nodeOptions;
    const wanted = options.runner ?? "auto";
    const stale = wanted === "tsx" ? undefined : staleBuildReason(this.root);
    if (wanted === "dist" && stale !== undefined) throw new Error(`dist/ cannot be used: ${stale}`);
    this.runner = wanted === "tsx" || stale !== undefined ? "tsx" : "dist";
    this.reason =
      wanted === "tsx" ? "tsx asked for" : stale === undefined ? "dist/ is built and fresh" : stale;
  }

  /** The script that is `bin`: dist/ctl/bin/BIN.js, or ctl/bin/BIN.ts under tsx. */
  script(bin: RingdBin): string {
    return this.runner === "dist"
      ? join(this.root, "dist", "ctl", "bin", `${bin}.js`)
      : join(this.root, "ctl", "bin", `${bin}.ts`);
  }

  /** The node options `bin` runs with: those given, else its shebang's. */
  nodeOptions(bin: RingdBin): readonly string[] {
    return this.#nodeOptions ?? shebangOptions(this.script(bin));
  }

  /** node's arguments that run `bin` with `args` from this checkout. */
  argv(bin: RingdBin, args: readonly string[]): string[] {
    const loader = this.runner === "dist" ? [] : ["--import", "tsx"];
    return [...this.nodeOptions(bin), ...loader, this.script(bin), ...args];
  }

  /** Run `bin` to completion (killed after `timeoutMs`, default 120 s), behind `prefix` if given. */
  run(bin: RingdBin, args: readonly string[], options: RunOptions = {}): Promise<Ran> {
    const [file, argv] = prefixed(options, this.argv(bin, args));
    return new Promise((resolve) => {
      execFile(
        file,
        argv,
        {
          cwd: this.root,
          env: childEnv(),
          timeout: options.timeoutMs ?? 120_000,
          maxBuffer: 16 * 1024 * 1024,
        },
        (err, stdout, stderr) =>
          resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : -1, stdout, stderr }),
      );
    });
  }

  /**
   * `ringctl ARGS` through the control socket of the ringd whose data dir is `dataDir`: `--data-dir`
   * goes before any `--`, after which come the arguments of a command run on the nodes.
   */
  ctl(args: readonly string[], dataDir: string, options: RunOptions = {}): Promise<Ran> {
    const dash = args.indexOf("--");
    const head = dash === -1 ? args : args.slice(0, dash);
    const tail = dash === -1 ? [] : args.slice(dash);
    return this.run("ringctl", [...head, "--data-dir", dataDir, ...tail], options);
  }

  /**
   * `ringd start --data-dir DATADIR ARGS` in the background, behind `options.prefix` if given, its
   * output where `options` says (see spawn); resolves with the process once it answers `status`
   * (see waitReady).
   */
  async start(
    dataDir: string,
    args: readonly string[] = [],
    options: StartOptions = {},
  ): Promise<ChildProcess> {
    const child = this.spawn("ringd", ["start", "--data-dir", dataDir, ...args], options);
    const { onStderr } = options;
    if (onStderr !== undefined) child.stderr?.on("data", (b: Buffer) => onStderr(b.toString()));
    await this.waitReady(child, dataDir, options);
    return child;
  }

  /**
   * Start `bin` in the background, behind `stdio.prefix` if given. Its stderr goes to a pipe whose
   * last 2,000 characters are kept (`tail`), unless `stdio.stderr` says "inherit" (a process meant
   * to outlive this one).
   */
  spawn(bin: RingdBin, args: readonly string[], stdio: SpawnStdio = {}): ChildProcess {
    return this.spawnNode(this.argv(bin, args), stdio);
  }

  /** Start `node ARGS` in the background, tracked like a ringd (for baselines beside it). */
  spawnNode(args: readonly string[], stdio: SpawnStdio = {}): ChildProcess {
    const [file, argv] = prefixed(stdio, args);
    const child = spawn(file, argv, {
      cwd: this.root,
      env: childEnv(),
      stdio: ["ignore", stdio.stdout ?? "ignore", stdio.stderr ?? "pipe"],
    });
    child.on("error", () => undefined); // an exit code of -1 says it
    this.#stderrTail.set(child, "");
    child.stderr?.on("data", (b: Buffer) => {
      this.#stderrTail.set(child, ((this.#stderrTail.get(child) ?? "") + b.toString()).slice(-2_000));
    });
    return this.track(child);
  }

  /** Stop `child` with the others at the end (e.g. a nats-server started by the caller). */
  track(child: ChildProcess): ChildProcess {
    this.#children.add(child);
    child.once("exit", () => this.#children.delete(child));
    return child;
  }

  /** The process ids of what is still running. */
  pids(): number[] {
    return [...this.#children].flatMap((c) => (c.pid === undefined ? [] : [c.pid]));
  }

  /** How a person runs `bin` the way this does, from the repository root. */
  commandLine(bin: RingdBin): string {
    return this.runner === "dist" ? `node dist/ctl/bin/${bin}.js` : `npx tsx ctl/bin/${bin}.ts`;
  }

  /** What `child` wrote on stderr last. */
  tail(child: ChildProcess): string {
    return this.#stderrTail.get(child) ?? "";
  }

  /**
   * Wait until the daemon in `dataDir` answers `status` on its control socket; throws at once,
   * with its stderr, if `child` exits first.
   */
  async waitReady(child: ChildProcess, dataDir: string, options: ReadyOptions = {}): Promise<void> {
    const deadline = performance.now() + (options.timeoutMs ?? 120_000);
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error(
          `ringd (${dataDir}) exited ${child.exitCode ?? child.signalCode} before it was ready: ${this.tail(child)}`,
        );
      if (await answersStatus(dataDir)) return;
      if (performance.now() > deadline)
        throw new Error(`ringd (${dataDir}) not ready in time; its stderr: ${this.tail(child) || "nothing"}`);
      await new Promise((r) => setTimeout(r, options.intervalMs ?? 10));
    }
  }

  /** SIGKILL `child` and wait for it to go. */
  async kill9(child: ChildProcess): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await gone;
  }

  /** SIGTERM every process still running (a ringd leaves the mesh), SIGKILL after `graceMs`. */
  async stopAll(graceMs = 10_000): Promise<void> {
    await Promise.all(
      [...this.#children].map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            const timer = setTimeout(() => c.kill("SIGKILL"), graceMs);
            c.once("exit", () => {
              clearTimeout(timer);
              resolve();
            });
            c.kill("SIGTERM");
          }),
      ),
    );
  }
}

/** The program and arguments that run `node nodeArgs` behind `options.prefix`. */
function prefixed(options: Prefixed, nodeArgs: readonly string[]): [string, string[]] {
  const [first, ...rest] = options.prefix ?? [];
  return first === undefined
    ? [process.execPath, [...nodeArgs]]
    : [first, [...rest, process.execPath, ...nodeArgs]];
}

/** This process's environment without ENJIN_* settings, which would override the flags given. */
export function childEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("ENJIN_")));
}

/** Options of controlCall. */
export interface ControlCallOptions {
  /** Give up connecting after this long (default 2,000 ms). */
  readonly connectTimeoutMs?: number;
}

/**
 * One call on the control socket of the ringd whose data dir is `dataDir`, on a connection of its
 * own, closed after: what ringctl does for one command, without a process.
 */
export async function controlCall(
  dataDir: string,
  method: string,
  params: unknown = {},
  options: ControlCallOptions = {},
): Promise<unknown> {
  const client = await connectControl(join(dataDir, "ringd.sock"), {
    connectTimeoutMs: options.connectTimeoutMs ?? 2_000,
  });
  try {
    return await client.call(method, params);
  } finally {
    client.close();
  }
}

function answersStatus(dataDir: string): Promise<boolean> {
  return controlCall(dataDir, "status").then(
    () => true,
    () => false,
  );
}
