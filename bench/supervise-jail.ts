/**
 * `npx tsx bench/supervise-jail.ts [--runs N]` (as root, bwrap installed): start-to-ready of a child
 * under the jail driver against a plain `spawn` of the same program, interleaved in one run so load
 * hits both alike. Ready means the child printed its first line (a shell) or answers on PORT (a node
 * server); both sides detect it the same way (inotify on the log file, TCP connects every 1 ms).
 *
 * The jail is measured on a first start (its system user is created), a restart (the user exists and
 * is reused), and with an operator-given uid (no account step at all); and bare `setpriv + bwrap` with
 * the same options, without the driver, to show what bubblewrap itself costs. Prints a summary on
 * stderr and one JSON record on stdout. Users are enjj-jb*; everything is removed at the end, also on
 * failure.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { watch } from "node:fs";
import { chmod, chown, mkdir, mkdtemp, open, readFile, rm } from "node:fs/promises";
import { connect } from "node:net";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { ChildHandle, ChildSpec, Driver } from "../agent/supervise/driver.ts";
import { jail } from "../agent/supervise/jail.ts";
import { bwrapOptions, encodeBwrapArgs, jailEnv } from "../agent/supervise/jail-args.ts";
import { probeRoot } from "../agent/supervise/jail-host.ts";
import { ETC_PATHS, jailView, SYSTEM_ROOT_PATHS } from "../agent/supervise/jail-view.ts";
import { removeUser } from "../agent/supervise/unix-user-account.ts";
import { resolveHostTools } from "../agent/supervise/unix-user-host.ts";
import { freePort } from "../test/support/free-port.ts";

const { values } = parseArgs({ options: { runs: { type: "string", default: "20" } } });
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1 || runs > 1000)
  throw new Error(`--runs takes 1..1000, not ${values.runs}`);
if (process.getuid?.() !== 0) throw new Error("bench/supervise-jail.ts needs root (useradd, setpriv)");
const say = (line: string) => process.stderr.write(`${line}\n`);

const PREFIX = "enjj-";
/** A child not ready after this long failed to start: the bench stops with its log instead of hanging. */
const READY_TIMEOUT_MS = 30_000;
/** An unprivileged uid for the operator-uid variant and the bare bwrap baseline (nobody). */
const OPERATOR_ID = 65534;

/** Resolves once `logPath` holds the line "ready" (inotify, then a read to be sure). */
function lineIn(logPath: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let done = false;
    const check = async () => {
      if (done || !(await readFile(logPath, "utf8").catch(() => "")).includes("ready\n")) return;
      done = true;
      watcher.close();
      resolve();
    };
    const watcher = watch(logPath, () => void check().catch(reject));
    const giveUp = setTimeout(() => {
      if (!done) watcher.close();
    }, READY_TIMEOUT_MS);
    watcher.once("close", () => clearTimeout(giveUp));
    void check().catch(reject);
  });
}

/** Resolves once something accepts a TCP connection on 127.0.0.1:port (tries every 1 ms). */
async function answersOn(port: number): Promise<void> {
  const deadline = performance.now() + READY_TIMEOUT_MS;
  while (performance.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, "127.0.0.1");
      s.once("connect", () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 1));
  }
}

/** `ready` within READY_TIMEOUT_MS, or an error quoting the log (a child that failed to start must not hang the bench). */
async function readyOrFail(program: Program, logPath: string, port: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(async () => {
      const log = await readFile(logPath, "utf8").catch(() => "");
      reject(new Error(`${program.label} not ready after ${READY_TIMEOUT_MS} ms; its log: ${log}`));
    }, READY_TIMEOUT_MS);
  });
  try {
    await Promise.race([program.ready(logPath, port), late]);
  } finally {
    clearTimeout(timer);
  }
}

interface Program {
  readonly label: string;
  readonly command: readonly string[];
  readonly ready: (logPath: string, port: number) => Promise<void>;
}
const PROGRAMS: readonly Program[] = [
  {
    label: "sh (prints a line)",
    command: ["/bin/sh", "-c", "echo ready; exec sleep 1000"],
    ready: (log) => lineIn(log),
  },
  {
    label: "node (answers on PORT)",
    command: ["/usr/bin/node", "-e", "require('net').createServer((s) => s.end()).listen(+process.env.PORT)"],
    ready: (_log, port) => answersOn(port),
  },
];

const quantile = (xs: readonly number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] as number;
};
const summary = (xs: readonly number[]) => ({
  p50Ms: +quantile(xs, 0.5).toFixed(2),
  p90Ms: +quantile(xs, 0.9).toFixed(2),
  meanMs: +(xs.reduce((a, b) => a + b, 0) / xs.length).toFixed(2),
});
/** bwrap options minus those that read or write extra fds (status, passwd, group), for the bare run. */
function withoutFdOptions(options: readonly string[]): string[] {
  const operands = new Map([
    ["--json-status-fd", 1],
    ["--ro-bind-data", 2],
  ]);
  const out: string[] = [];
  for (let i = 0; i < options.length; i++) {
    const skip = operands.get(options[i] as string);
    if (skip === undefined) out.push(options[i] as string);
    else i += skip;
  }
  return out;
}
const uptime = () => execFileSync("uptime", { encoding: "utf8" }).trim();

async function main() {
  const loadBefore = uptime();
  const root = await mkdtemp("/tmp/enjj-bench-");
  const stateDir = join(root, "state");
  const perChild = jail({ userPrefix: PREFIX })({ agentStateDir: stateDir });
  const operator = jail({ uid: OPERATOR_ID, gid: OPERATOR_ID })({ agentStateDir: stateDir });
  const live: Array<{ driver: Driver; handle: ChildHandle }> = [];
  const tools = await resolveHostTools();
  const rootEntries = await probeRoot(SYSTEM_ROOT_PATHS);
  try {
    await chmod(root, 0o711);
    await mkdir(stateDir, { mode: 0o700 });
    await mkdir(join(root, "logs"), { mode: 0o700 });
    const results: Record<string, unknown> = {};
    for (const [index, program] of PROGRAMS.entries()) {
      const name = `jb${index}`;
      const dir = join(root, name);
      await mkdir(dir, { mode: 0o700 });
      const spec: ChildSpec = { name, command: program.command };
      const port = await freePort();
      let n = 0;
      const logPath = () => join(root, "logs", `${name}-${n++}.log`);
      const times = {
        spawn: [] as number[],
        bwrap: [] as number[],
        first: [] as number[],
        restart: [] as number[],
        operator: [] as number[],
        startCall: [] as number[],
      };

      const plain = async () => {
        const log = logPath();
        const fd = await open(log, "a", 0o600);
        const t0 = performance.now();
        const child: ChildProcess = spawn(program.command[0] as string, program.command.slice(1), {
          cwd: dir,
          env: { PORT: String(port), HOME: dir, PATH: "/usr/local/bin:/usr/bin:/bin" },
          stdio: ["ignore", fd.fd, fd.fd],
          detached: true,
        });
        await fd.close();
        await readyOrFail(program, log, port);
        times.spawn.push(performance.now() - t0);
        const gone = new Promise((r) => child.once("exit", r));
        process.kill(child.pid as number, "SIGKILL");
        await gone;
      };
      // setpriv + bwrap with the driver's options, no driver: what bubblewrap itself costs.
      const bareBwrap = async () => {
        await chown(dir, OPERATOR_ID, OPERATOR_ID); // as the drivers do before they start a jail
        const log = logPath();
        const fd = await open(log, "a", 0o600);
        const mounts = jailView({
          root: rootEntries,
          optionalPaths: ETC_PATHS,
          roBinds: [],
          dir,
          agentStateDir: stateDir,
        });
        const options = bwrapOptions({
          uid: OPERATOR_ID,
          gid: OPERATOR_ID,
          hostname: name,
          mounts,
          cwd: dir,
          env: jailEnv(spec, port, dir),
        });
        const args = withoutFdOptions(options);
        const t0 = performance.now();
        const child = spawn(
          tools.setpriv,
          [
            "--reuid",
            String(OPERATOR_ID),
            "--regid",
            String(OPERATOR_ID),
            "--clear-groups",
            "--",
            "/usr/bin/bwrap",
            "--args",
            "3",
            "--",
            ...program.command,
          ],
          { stdio: ["ignore", fd.fd, fd.fd, "pipe"], detached: true },
        );
        (child.stdio[3] as NodeJS.WritableStream).end(encodeBwrapArgs(args));
        await fd.close();
        await readyOrFail(program, log, port);
        times.bwrap.push(performance.now() - t0);
        const gone = new Promise((r) => child.once("exit", r));
        process.kill(-(child.pid as number), "SIGKILL");
        await gone;
      };
      const underDriver = async (driver: Driver, into: number[]) => {
        const log = logPath();
        const t0 = performance.now();
        const handle = await driver.start({ spec, port, dir, logPath: log });
        times.startCall.push(performance.now() - t0);
        live.push({ driver, handle });
        await readyOrFail(program, log, port);
        into.push(performance.now() - t0);
        await driver.stop(handle, 1_000, "SIGKILL");
        return handle;
      };

      await plain(); // warm caches for every side
      await bareBwrap();
      await perChild.cleanup(await underDriver(perChild, []));
      await operator.cleanup(await underDriver(operator, []));
      live.length = 0;
      times.startCall.length = 0;
      for (let i = 0; i < runs; i++) {
        await plain();
        await bareBwrap();
        const h = await underDriver(perChild, times.first); // the user does not exist: useradd
        await underDriver(perChild, times.restart); // it does: reused
        await perChild.cleanup(h);
        await underDriver(operator, times.operator);
        live.length = 0;
      }
      const base = summary(times.spawn);
      const ratio = (s: { p50Ms: number }) => +(s.p50Ms / base.p50Ms).toFixed(2);
      const bwrap = summary(times.bwrap);
      const first = summary(times.first);
      const restart = summary(times.restart);
      const op = summary(times.operator);
      results[program.label] = {
        spawn: base,
        bareSetprivBwrap: bwrap,
        jailFirstStart: first,
        jailRestart: restart,
        jailOperatorUid: op,
        startCallResolves: summary(times.startCall),
        ratioP50: {
          bareBwrap: ratio(bwrap),
          first: ratio(first),
          restart: ratio(restart),
          operatorUid: ratio(op),
        },
      };
      say(`${program.label}: ${JSON.stringify(results[program.label])}`);
    }
    const record = {
      bench: "supervise-jail",
      runs,
      machine: { cpu: cpus()[0]?.model, cores: cpus().length, memBytes: totalmem(), node: process.version },
      uptimeBefore: loadBefore,
      uptimeAfter: uptime(),
      results,
    };
    process.stdout.write(`${JSON.stringify(record)}\n`);
  } finally {
    for (const { driver, handle } of live) {
      await driver.stop(handle, 1_000, "SIGKILL").catch(() => {});
      await driver.cleanup(handle).catch(() => {});
    }
    for (const name of PROGRAMS.map((_, i) => `jb${i}`))
      await removeUser(`${PREFIX}${name}`, name, tools).catch(() => {});
    await rm(root, { recursive: true, force: true });
  }
}

await main();
