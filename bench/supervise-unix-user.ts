/**
 * `npx tsx bench/supervise-unix-user.ts [--runs N]` (as root): start-to-ready of a child under the
 * unix-user driver against a plain `spawn` of the same program, measured interleaved in one run so
 * load hits both alike. Ready means the child printed its first line (a shell) or answers on PORT
 * (a node server); both sides detect it the same way (inotify on the log file, TCP connects).
 *
 * unix-user is measured on a first start (the account is created: useradd) and on a restart (the
 * account exists and is reused); the account step alone is timed too (useradd vs reuse, and userdel).
 * Prints a summary on stderr and one JSON record on stdout. Users are enjb-*, cgroups under
 * enjb-bench-<pid>; everything is removed at the end, also on failure.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { watch } from "node:fs";
import { chmod, mkdir, mkdtemp, open, readFile, rm, rmdir } from "node:fs/promises";
import { connect } from "node:net";
import { cpus, loadavg, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { detectCgroups } from "../agent/supervise/cgroup-layout.ts";
import type { ChildHandle, ChildSpec } from "../agent/supervise/driver.ts";
import { unixUser } from "../agent/supervise/unix-user.ts";
import { type AccountTools, ensureUser, removeUser } from "../agent/supervise/unix-user-account.ts";
import { resolveHostTools } from "../agent/supervise/unix-user-host.ts";

const { values } = parseArgs({ options: { runs: { type: "string", default: "20" } } });
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1 || runs > 1000)
  throw new Error(`--runs takes 1..1000, not ${values.runs}`);
if (process.getuid?.() !== 0) throw new Error("bench/supervise-unix-user.ts needs root (useradd, cgroups)");
const say = (line: string) => process.stderr.write(`${line}\n`);

const PREFIX = "enjb-";
const CGROUP_PARENT = `enjb-bench-${process.pid}`;
const PORT = 43_917;

interface Program {
  readonly label: string;
  readonly command: readonly string[];
  readonly ready: (logPath: string) => Promise<void>;
}

/** Resolves once `logPath` holds a full line (inotify, then a read to be sure). */
function lineIn(logPath: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = async () => (await readFile(logPath, "utf8").catch(() => "")).includes("\n");
    const watcher = watch(logPath, () => {
      void check().then((done) => {
        if (done) {
          watcher.close();
          resolve();
        }
      }, reject);
    });
    void check().then((done) => {
      if (done) {
        watcher.close();
        resolve();
      }
    });
  });
}

/** Resolves once something accepts a TCP connection on 127.0.0.1:PORT (tries every 1 ms). */
async function answersOnPort(): Promise<void> {
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(PORT, "127.0.0.1");
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

const PROGRAMS: readonly Program[] = [
  { label: "sh (prints a line)", command: ["/bin/sh", "-c", "echo ready; exec sleep 1000"], ready: lineIn },
  {
    label: "node (answers on PORT)",
    command: ["/usr/bin/node", "-e", "require('net').createServer((s) => s.end()).listen(+process.env.PORT)"],
    ready: () => answersOnPort(),
  },
];

const quantile = (xs: readonly number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};
const summary = (xs: readonly number[]) => ({
  p50Ms: +quantile(xs, 0.5).toFixed(2),
  p90Ms: +quantile(xs, 0.9).toFixed(2),
  meanMs: +(xs.reduce((a, b) => a + b, 0) / xs.length).toFixed(2),
});

async function main() {
  const load = { before: loadavg().map((x) => +x.toFixed(2)) };
  const root = await mkdtemp("/tmp/enjb-bench-");
  const handles: ChildHandle[] = [];
  const stateDir = join(root, "state");
  const driver = unixUser({ userPrefix: PREFIX, cgroupParent: CGROUP_PARENT })({ agentStateDir: stateDir });
  const tools: AccountTools = await resolveHostTools();
  try {
    await chmod(root, 0o711);
    await mkdir(stateDir, { mode: 0o700 });
    await mkdir(join(root, "logs"), { mode: 0o700 });
    const results: Record<string, unknown> = {};
    for (const program of PROGRAMS) {
      const times = {
        spawn: [] as number[],
        first: [] as number[],
        restart: [] as number[],
        startCall: [] as number[],
      };
      const name = `b${PROGRAMS.indexOf(program)}`;
      const dir = join(root, name);
      await mkdir(dir, { mode: 0o700 });
      const spec: ChildSpec = {
        name,
        command: program.command,
        limits: { memoryBytes: 256 << 20, pids: 64 },
      };
      let n = 0;
      const logPath = () => join(root, "logs", `${name}-${n++}.log`);

      const plain = async () => {
        const log = logPath();
        const fd = await open(log, "a", 0o600);
        const t0 = performance.now();
        const child: ChildProcess = spawn(program.command[0]!, program.command.slice(1), {
          cwd: dir,
          env: { PORT: String(PORT), HOME: dir, PATH: "/usr/local/bin:/usr/bin:/bin" },
          stdio: ["ignore", fd.fd, fd.fd],
          detached: true,
        });
        await fd.close();
        await program.ready(log);
        times.spawn.push(performance.now() - t0);
        const gone = new Promise((r) => child.once("exit", r));
        process.kill(-child.pid!, "SIGKILL");
        await gone;
      };
      const underDriver = async (into: number[]) => {
        const log = logPath();
        const t0 = performance.now();
        const h = await driver.start({ spec, port: PORT, dir, logPath: log });
        times.startCall.push(performance.now() - t0);
        handles.push(h);
        await program.ready(log);
        into.push(performance.now() - t0);
        await driver.stop(h, 1_000, "SIGKILL");
        return h;
      };

      await plain(); // warm the page cache for both sides
      await driver.cleanup(await underDriver([]));
      handles.length = 0;
      times.startCall.length = 0;
      for (let i = 0; i < runs; i++) {
        await plain();
        const h = await underDriver(times.first); // the account does not exist: useradd
        await underDriver(times.restart); // it does: reused
        await driver.cleanup(h);
        handles.length = 0;
      }
      const base = summary(times.spawn);
      const first = summary(times.first);
      const restart = summary(times.restart);
      results[program.label] = {
        spawn: base,
        unixUserFirstStart: first,
        unixUserRestart: restart,
        startCallResolves: summary(times.startCall),
        ratioFirstP50: +(first.p50Ms / base.p50Ms).toFixed(2),
        ratioRestartP50: +(restart.p50Ms / base.p50Ms).toFixed(2),
        overheadRestartP50Ms: +(restart.p50Ms - base.p50Ms).toFixed(2),
      };
      say(`${program.label}: ${JSON.stringify(results[program.label])}`);
    }

    const account = { create: [] as number[], reuse: [] as number[], remove: [] as number[] };
    const home = join(root, "acct");
    await mkdir(home, { mode: 0o700 });
    for (let i = 0; i < runs; i++) {
      let t0 = performance.now();
      await ensureUser(`${PREFIX}acct`, "acct", home, tools);
      account.create.push(performance.now() - t0);
      t0 = performance.now();
      await ensureUser(`${PREFIX}acct`, "acct", home, tools);
      account.reuse.push(performance.now() - t0);
      t0 = performance.now();
      await removeUser(`${PREFIX}acct`, "acct", tools);
      account.remove.push(performance.now() - t0);
    }
    results.account = {
      useradd: summary(account.create),
      reuse: summary(account.reuse),
      userdel: summary(account.remove),
    };
    say(`account: ${JSON.stringify(results.account)}`);
    const record = {
      bench: "supervise-unix-user",
      date: new Date().toISOString(),
      machine: {
        cpus: cpus().length,
        model: cpus()[0]?.model,
        memoryBytes: totalmem(),
        node: process.version,
      },
      load: { ...load, after: loadavg().map((x) => +x.toFixed(2)) },
      runs,
      results,
    };
    process.stdout.write(`${JSON.stringify(record, null, 2)}\n`);
  } finally {
    for (const h of handles) {
      await driver.stop(h, 200).catch(() => {});
      await driver.cleanup(h).catch(() => {});
    }
    await removeUser(`${PREFIX}acct`, "acct", tools).catch(() => {});
    for (const h of (await detectCgroups()).hierarchies)
      await rmdir(join(h.mountPath, CGROUP_PARENT)).catch(() => {});
    await rm(root, { recursive: true, force: true });
  }
}

await main();
