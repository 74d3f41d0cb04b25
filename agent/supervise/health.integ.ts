import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { eventually } from "../../test/support/eventually.ts";
import { freePort } from "../../test/support/free-port.ts";
import { systemClock } from "../clock.ts";
import { type HealthStatus, healthCheck } from "./health.ts";
import { HealthMonitor } from "./health-monitor.ts";
import { probeExec, probeHttp, probeTcp } from "./health-probe.ts";

const HTTP_CHILD = join(import.meta.dirname, "fixtures", "http-child.mjs");

let dir: string;
let child: ChildProcess | undefined;
let port: number;

async function startHttpChild(): Promise<ChildProcess> {
  const c = spawn(process.execPath, [HTTP_CHILD], {
    env: { PORT: String(port), PATH: "/usr/bin:/bin" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  await new Promise<void>((resolve, reject) => {
    c.once("error", reject);
    c.stdout!.once("data", () => resolve());
  });
  return c;
}

async function killChild(): Promise<void> {
  const c = child;
  child = undefined;
  if (c === undefined || c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise((resolve) => c.once("exit", resolve));
  c.kill("SIGKILL");
  await exited;
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "enjin-health-"));
  port = await freePort();
});
afterEach(async () => {
  await killChild();
  await rm(dir, { recursive: true, force: true });
});

describe("real probes", () => {
  it("tcp and http succeed against a real HTTP server child and fail once it is gone", async () => {
    child = await startHttpChild();
    expect(await probeTcp("127.0.0.1", port, 2_000)).toEqual({ ok: true, detail: "connected" });
    expect(await probeHttp("127.0.0.1", port, "/health", 2_000)).toEqual({ ok: true, detail: "http 200" });
    expect(await probeHttp("127.0.0.1", port, "/missing", 2_000)).toEqual({ ok: false, detail: "http 404" });
    await killChild();
    expect(await probeTcp("127.0.0.1", port, 2_000)).toEqual({ ok: false, detail: "ECONNREFUSED" });
    expect(await probeHttp("127.0.0.1", port, "/health", 2_000)).toEqual({
      ok: false,
      detail: "ECONNREFUSED",
    });
  });

  it("http times out on a server that accepts but never answers", async () => {
    const sockets: Socket[] = [];
    const silent = createServer((socket) => sockets.push(socket));
    await new Promise<void>((r) => silent.listen(port, "127.0.0.1", r));
    try {
      expect(await probeHttp("127.0.0.1", port, "/", 200)).toEqual({
        ok: false,
        detail: "no answer within 200 ms",
      });
      expect(sockets.length).toBe(1);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => silent.close(r));
    }
  });

  it("exec: exit 0 passes, anything else fails with what the command said", async () => {
    expect(await probeExec(["/bin/true"], { timeoutMs: 2_000 })).toEqual({ ok: true, detail: "exit code 0" });
    expect(await probeExec(["/bin/sh", "-c", "echo not ready >&2; exit 3"], { timeoutMs: 2_000 })).toEqual({
      ok: false,
      detail: "exit code 3: not ready",
    });
    const missing = await probeExec(["/nonexistent/check"], { timeoutMs: 2_000 });
    expect(missing).toEqual({ ok: false, detail: "ENOENT" });
    // It runs in the child's directory with the child's environment only.
    const env = await probeExec(
      ["/bin/sh", "-c", 'test "$PWD" = "$WANT" && test -z "$HOME" && exit 0; exit 1'],
      {
        cwd: dir,
        env: { WANT: dir },
        timeoutMs: 2_000,
      },
    );
    expect(env.ok).toBe(true);
  });

  it("exec: an overrunning command is killed with its whole process group", async () => {
    const marker = join(dir, "grandchild-pid");
    const result = await probeExec(["/bin/sh", "-c", `sleep 30 & echo $! > ${marker}; wait`], {
      timeoutMs: 300,
    });
    expect(result).toEqual({ ok: false, detail: "still running after 300 ms" });
    const grandchild = Number((await readFile(marker, "utf8")).trim());
    await eventually(async () => {
      // Gone, or a zombie waiting for init to reap it.
      const state = await readFile(`/proc/${grandchild}/stat`, "utf8").catch(() => "gone");
      expect(state === "gone" || state.slice(state.lastIndexOf(")") + 2).startsWith("Z")).toBe(true);
    });
    await stat(dir);
  });
});

describe("HealthMonitor with real probes", () => {
  it("turns healthy once the child answers, unhealthy after it is killed", async () => {
    const changes: HealthStatus[] = [];
    const monitor = new HealthMonitor(
      {
        checks: [
          healthCheck({ kind: "http", path: "/health", intervalMs: 50, timeoutMs: 500, graceMs: 5_000 }),
          healthCheck({ kind: "tcp", intervalMs: 50, timeoutMs: 500, graceMs: 5_000 }),
        ],
        target: { port },
        clock: systemClock(),
        onChange: (s) => changes.push(s),
      },
      Date.now(),
    );
    monitor.start();
    try {
      child = await startHttpChild();
      await eventually(() => expect(changes).toEqual(["healthy"]));
      await killChild();
      await eventually(() => expect(changes).toEqual(["healthy", "unhealthy"]));
      expect(monitor.states.some((s) => s.lastDetail === "ECONNREFUSED")).toBe(true);
    } finally {
      monitor.stop();
    }
  });
});
