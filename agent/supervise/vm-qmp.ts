/**
 * A minimal QMP (QEMU Machine Protocol) client over qemu's UNIX socket: connect, read the greeting,
 * negotiate capabilities, run commands one at a time and match answers by `id`; asynchronous events
 * (POWERDOWN, SHUTDOWN ...) are skipped. The vm driver uses it to stop a guest cleanly
 * (`system_powerdown`, then `quit`) and to check that a recovered qemu still answers (`query-status`).
 *
 * The wire is JSON objects, one per line (qemu ends each with CRLF):
 *   server: {"QMP": {"version": ..., "capabilities": [...]}}
 *   client: {"execute": "qmp_capabilities", "id": 1}      server: {"return": {}, "id": 1}
 *   client: {"execute": "query-status", "id": 2}          server: {"return": {"status": "running", ...}, "id": 2}
 *   server: {"event": "SHUTDOWN", ...}                     (at any time)
 *   server: {"error": {"class": "...", "desc": "..."}, "id": N}
 */
import { connect, type Socket } from "node:net";
import { QmpError } from "./errors.ts";

/** Longest line the client buffers from qemu before giving up on the connection. */
export const MAX_QMP_LINE_BYTES = 1024 * 1024;

interface Pending {
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: Error) => void;
}

/** One QMP connection. Build it with `QmpClient.connect`. */
export class QmpClient {
  private buffer = "";
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private greeted: Pending | undefined;
  private closedError: Error | undefined;

  private constructor(private readonly socket: Socket) {
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => this.onData(chunk));
    socket.on("error", (err) =>
      this.fail(new QmpError(`QMP connection failed: ${err.message}`, { cause: err })),
    );
    socket.on("close", () => this.fail(new QmpError("QMP connection closed by qemu")));
  }

  /** Connect to the socket at `path`, wait for the greeting and negotiate capabilities. */
  static async connect(path: string, timeoutMs: number): Promise<QmpClient> {
    const socket = connect(path);
    const client = new QmpClient(socket);
    const deadline = setTimeout(
      () => client.fail(new QmpError(`QMP at ${path} did not greet within ${timeoutMs} ms`)),
      timeoutMs,
    );
    try {
      await new Promise((resolve, reject) => {
        client.greeted = { resolve, reject };
      });
      await client.execute("qmp_capabilities", undefined, timeoutMs);
      return client;
    } catch (err) {
      client.close();
      throw err;
    } finally {
      clearTimeout(deadline);
    }
  }

  /** Run one command; resolves with its `return` value, rejects with QmpError on an error or time-out. */
  execute(command: string, args?: Record<string, unknown>, timeoutMs = 5_000): Promise<unknown> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new QmpError(`QMP command ${command} got no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.socket.write(
        `${JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id })}\n`,
      );
    });
  }

  /** Close the connection; pending commands fail. */
  close(): void {
    this.fail(new QmpError("QMP connection closed"));
    this.socket.destroy();
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    if (this.buffer.length > MAX_QMP_LINE_BYTES) {
      this.fail(new QmpError(`QMP sent a line longer than ${MAX_QMP_LINE_BYTES} bytes`));
      this.socket.destroy();
      return;
    }
    for (let nl = this.buffer.indexOf("\n"); nl >= 0; nl = this.buffer.indexOf("\n")) {
      const line = this.buffer.slice(0, nl).trim();
      this.buffer = this.buffer.slice(nl + 1);
      if (line !== "") this.onMessage(line);
    }
  }

  private onMessage(line: string): void {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return; // not JSON: nothing of ours to match it to
    }
    if ("QMP" in msg) {
      this.greeted?.resolve(msg.QMP);
      this.greeted = undefined;
      return;
    }
    if (typeof msg.id !== "number") return; // an event
    const waiter = this.pending.get(msg.id);
    if (!waiter) return;
    this.pending.delete(msg.id);
    if ("error" in msg) {
      const e = msg.error as { class?: string; desc?: string } | null;
      waiter.reject(new QmpError(`QMP refused: ${e?.class ?? "error"}: ${e?.desc ?? "no description"}`));
    } else waiter.resolve(msg.return);
  }

  private fail(err: Error): void {
    if (this.closedError) return;
    this.closedError = err;
    this.greeted?.reject(err);
    this.greeted = undefined;
    for (const waiter of this.pending.values()) waiter.reject(err);
    this.pending.clear();
  }
}

/** Connect, run `command`, close. Convenience for one-off commands. */
export async function qmpExecute(
  path: string,
  command: string,
  timeoutMs: number,
  args?: Record<string, unknown>,
): Promise<unknown> {
  const client = await QmpClient.connect(path, timeoutMs);
  try {
    return await client.execute(command, args, timeoutMs);
  } finally {
    client.close();
  }
}
