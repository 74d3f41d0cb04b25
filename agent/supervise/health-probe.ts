/**
 * The real probes behind health checks: a TCP connect, an HTTP GET, a command run. Each resolves to
 * a ProbeResult (never rejects) within its timeout, and leaves nothing behind: sockets are destroyed
 * and a command that overruns is killed with its whole process group.
 */
import { spawn } from "node:child_process";
import { request } from "node:http";
import { connect } from "node:net";
import type { HealthCheck, ProbeResult } from "./health.ts";

/** Where a check probes, and what an exec check runs with. */
export interface ProbeTarget {
  /** Host the child's port is reached on (default 127.0.0.1). */
  readonly host?: string;
  readonly port: number;
  /** Working directory of exec checks (the child's directory). */
  readonly cwd?: string;
  /** Environment of exec checks (the child's: its env, PORT, HOME, PATH). */
  readonly env?: Readonly<Record<string, string>>;
}

/** Runs one probe of a check against a target. The default is `probe`; tests may pass their own. */
export type Prober = (check: HealthCheck, target: ProbeTarget) => Promise<ProbeResult>;

/** Most bytes of an exec check's output kept in its detail. */
export const EXEC_DETAIL_BYTES = 200;

const failed = (detail: string): ProbeResult => ({ ok: false, detail });
const errorDetail = (err: unknown): string => {
  const e = err as NodeJS.ErrnoException;
  return e.code ?? e.message ?? String(err);
};

/** A TCP connection to `host:port` is accepted within `timeoutMs`. */
export function probeTcp(host: string, port: number, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const timer = setTimeout(() => finish(failed(`no connection within ${timeoutMs} ms`)), timeoutMs);
    function finish(result: ProbeResult): void {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    }
    socket.once("connect", () => finish({ ok: true, detail: "connected" }));
    socket.once("error", (err) => finish(failed(errorDetail(err))));
  });
}

/** GET `http://host:port{path}` answers 2xx or 3xx within `timeoutMs`. */
export function probeHttp(host: string, port: number, path: string, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let done = false;
    const req = request({ host, port, path, method: "GET", agent: false, headers: { connection: "close" } });
    const timer = setTimeout(() => finish(failed(`no answer within ${timeoutMs} ms`)), timeoutMs);
    function finish(result: ProbeResult): void {
      if (done) return;
      done = true;
      clearTimeout(timer);
      req.destroy();
      resolve(result);
    }
    req.once("response", (res) => {
      const status = res.statusCode ?? 0;
      res.resume();
      finish({ ok: status >= 200 && status < 400, detail: `http ${status}` });
    });
    req.once("error", (err) => finish(failed(errorDetail(err))));
    req.end();
  });
}

/** `command` exits 0 within `timeoutMs`; an overrun kills its process group. */
export function probeExec(
  command: readonly string[],
  options: { cwd?: string; env?: Readonly<Record<string, string>>; timeoutMs: number },
): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const [file, ...args] = command as [string, ...string[]];
    let output = "";
    let done = false;
    const child = spawn(file, args, {
      cwd: options.cwd,
      env: { ...options.env },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    const keep = (chunk: Buffer) => {
      if (output.length < EXEC_DETAIL_BYTES) output += chunk.toString("utf8");
    };
    child.stdout.on("data", keep);
    child.stderr.on("data", keep);
    const timer = setTimeout(() => {
      killGroup(child.pid);
      finish(failed(`still running after ${options.timeoutMs} ms`));
    }, options.timeoutMs);
    function finish(result: ProbeResult): void {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(result);
    }
    child.once("error", (err) => finish(failed(errorDetail(err))));
    child.once("close", (code, signal) => {
      const said = output.trim().slice(0, EXEC_DETAIL_BYTES);
      const how = signal !== null ? `killed by ${signal}` : `exit code ${code}`;
      finish({ ok: code === 0, detail: said === "" ? how : `${how}: ${said}` });
    });
  });
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // already gone
  }
}

/** The default prober: the real probe for the check's kind. */
export const probe: Prober = (check, target) => {
  const host = target.host ?? "127.0.0.1";
  switch (check.kind) {
    case "tcp":
      return probeTcp(host, target.port, check.timeoutMs);
    case "http":
      return probeHttp(host, target.port, check.path, check.timeoutMs);
    case "exec":
      return probeExec(check.command, { cwd: target.cwd, env: target.env, timeoutMs: check.timeoutMs });
  }
};
