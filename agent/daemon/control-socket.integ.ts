import { execFile, spawn } from "node:child_process";
import { chmod, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { eventually } from "../../test/support/eventually.ts";
import { ControlFrameReader, encodeControlFrame, MAX_CONTROL_FRAME_BYTES } from "./control-frame.ts";
import {
  CONTROL_SOCKET_MODE,
  type ControlHandler,
  type ControlServer,
  connectControl,
  serveControl,
} from "./control-socket.ts";
import {
  ControlConnectionClosedError,
  ControlPermissionError,
  ControlTimeoutError,
  DaemonNotRunningError,
  RemoteCallError,
  SocketInUseError,
  SocketPathOccupiedError,
} from "./errors.ts";

const execFileAsync = promisify(execFile);
let dir: string;
let sock: string;
const servers: ControlServer[] = [];

const handlers: Record<string, ControlHandler> = {
  echo: (params) => ({ echoed: params }),
  fail: () => {
    throw new RangeError("no such thing");
  },
  steps: async (params, ctx) => {
    const n = (params as { n: number }).n;
    for (let i = 1; i <= n; i++) {
      ctx.progress({ step: i, of: n });
      await new Promise((r) => setTimeout(r, 5));
    }
    return { done: n };
  },
  flood: async (_params, ctx) => {
    const chunk = "x".repeat(512 * 1024);
    for (let i = 0; i < 64 && !ctx.signal.aborted; i++) {
      ctx.progress(chunk);
      await new Promise((r) => setImmediate(r));
    }
    return ctx.signal.aborted ? "aborted" : "sent";
  },
  hang: (_params, ctx) => new Promise((resolve) => ctx.signal.addEventListener("abort", () => resolve(null))),
};

async function serve(path = sock): Promise<ControlServer> {
  const server = await serveControl(path, handlers);
  servers.push(server);
  return server;
}

/** Send raw bytes on a fresh connection; return every frame the server sends until it closes. */
function rawExchange(path: string, bytes: Buffer): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    const reader = new ControlFrameReader();
    const got: unknown[] = [];
    socket.on("data", (chunk) => {
      for (const body of reader.push(chunk)) got.push(JSON.parse(body.toString("utf8")));
    });
    socket.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code !== "EPIPE" && err.code !== "ECONNRESET") reject(err);
    });
    socket.on("close", () => resolve(got));
    socket.write(bytes);
  });
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "enjin-ctl-"));
  sock = join(dir, "ringd.sock");
});

afterEach(async () => {
  for (const server of servers.splice(0)) await server.close();
  await rm(dir, { recursive: true, force: true });
});

describe("serveControl", () => {
  it("creates the socket file with mode 0600 even under umask 0, and removes it on close", async () => {
    const previous = process.umask(0);
    let server: ControlServer;
    try {
      server = await serve();
    } finally {
      process.umask(previous);
    }
    expect(process.umask(previous)).toBe(previous); // serveControl put the umask back
    const info = await stat(sock);
    expect(info.isSocket()).toBe(true);
    expect(info.mode & 0o777).toBe(CONTROL_SOCKET_MODE);
    await server.close();
    await expect(stat(sock)).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("answers a call, several calls in flight, and a handler's error by name", async () => {
    const server = await serve();
    const client = await connectControl(sock);
    expect(await client.call("echo", { a: [1, "two"] })).toEqual({ echoed: { a: [1, "two"] } });
    const many = await Promise.all([1, 2, 3].map((i) => client.call("echo", i)));
    expect(many).toEqual([{ echoed: 1 }, { echoed: 2 }, { echoed: 3 }]);
    const err = await client.call("fail").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RemoteCallError);
    expect(err).toMatchObject({ remoteName: "RangeError", message: "no such thing" });
    const unknown = await client.call("nope").catch((e: unknown) => e);
    expect(unknown).toMatchObject({ name: "RemoteCallError", remoteName: "UnknownMethodError" });
    expect(server.stats()).toMatchObject({
      requests: 6,
      handlerErrors: 1,
      rejected: { "unknown-method": 1 },
    });
    client.close();
  });

  it("sends progress messages, in order, before the result", async () => {
    await serve();
    const client = await connectControl(sock);
    const seen: unknown[] = [];
    const result = await client.call("steps", { n: 4 }, (p) => seen.push(p));
    expect(seen).toEqual([1, 2, 3, 4].map((step) => ({ step, of: 4 })));
    expect(result).toEqual({ done: 4 });
    client.close();
  });

  it("answers an oversized frame with an error, counts it, closes, and keeps serving", async () => {
    const server = await serve();
    const header = Buffer.alloc(4);
    header.writeUInt32BE(MAX_CONTROL_FRAME_BYTES + 1);
    const got = await rawExchange(sock, Buffer.concat([header, Buffer.alloc(64, 0x41)]));
    expect(got).toEqual([{ id: null, error: { name: "FrameTooLargeError", message: expect.any(String) } }]);
    expect(server.stats().rejected["frame-too-large"]).toBe(1);
    const client = await connectControl(sock);
    expect(await client.call("echo", "still here")).toEqual({ echoed: "still here" });
    client.close();
  });

  it("answers garbage and wrong-shaped requests with an error, counts them, keeps serving", async () => {
    const server = await serve();
    const body = Buffer.from("{not json");
    const header = Buffer.alloc(4);
    header.writeUInt32BE(body.length);
    const garbage = await rawExchange(sock, Buffer.concat([header, body]));
    expect(garbage).toEqual([
      { id: null, error: { name: "MalformedMessageError", message: expect.any(String) } },
    ]);
    const noMethod = await rawExchange(sock, encodeControlFrame({ id: 1, params: {} }));
    expect(noMethod).toMatchObject([{ id: null, error: { name: "MalformedMessageError" } }]);
    const array = await rawExchange(sock, encodeControlFrame([1, 2]));
    expect(array).toMatchObject([{ id: null, error: { name: "MalformedMessageError" } }]);
    expect(server.stats().rejected.malformed).toBe(3);
    const client = await connectControl(sock);
    expect(await client.call("echo", 7)).toEqual({ echoed: 7 });
    client.close();
  });

  it("closes a client that stops reading before it buffers without bound", async () => {
    const server = await serve();
    const socket = createConnection(sock);
    socket.on("error", () => {});
    await new Promise((r) => socket.once("connect", r));
    socket.pause(); // never read: the daemon's queue for this client grows
    socket.write(encodeControlFrame({ id: 1, method: "flood" }));
    await eventually(() => expect(server.stats().rejected["slow-reader"]).toBe(1));
    socket.destroy();
    const client = await connectControl(sock);
    expect(await client.call("echo", "fine")).toEqual({ echoed: "fine" });
    client.close();
  });

  it("aborts a running handler when its caller disconnects", async () => {
    await serve();
    const client = await connectControl(sock);
    const call = client.call("hang").catch((e: unknown) => e);
    client.close();
    expect(await call).toBeInstanceOf(ControlConnectionClosedError);
    const again = await connectControl(sock);
    expect(await again.call("echo", 1)).toEqual({ echoed: 1 });
    again.close();
  });

  it("refuses to start on a path a live daemon owns, and leaves that daemon serving", async () => {
    await serve();
    await expect(serveControl(sock, handlers)).rejects.toBeInstanceOf(SocketInUseError);
    const client = await connectControl(sock);
    expect(await client.call("echo", "first")).toEqual({ echoed: "first" });
    client.close();
  });

  it("reclaims a stale socket file left by a dead daemon", async () => {
    // A daemon killed with SIGKILL never unlinks its socket: make one that way.
    const child = spawn(process.execPath, [
      "-e",
      `require("node:net").createServer().listen(${JSON.stringify(sock)}, () => console.log("up"))`,
    ]);
    await new Promise<void>((resolve) => child.stdout.once("data", () => resolve()));
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
    await expect(stat(sock)).resolves.toBeTruthy();
    await expect(connectControl(sock)).rejects.toBeInstanceOf(DaemonNotRunningError);
    await serve();
    const client = await connectControl(sock);
    expect(await client.call("echo", "reclaimed")).toEqual({ echoed: "reclaimed" });
    client.close();
  });

  it("refuses a path held by something that is not a socket", async () => {
    await writeFile(sock, "precious");
    await expect(serveControl(sock, handlers)).rejects.toBeInstanceOf(SocketPathOccupiedError);
  });
});

describe("connectControl", () => {
  it("says the daemon is not running, and how to start it, when the socket is missing", async () => {
    const err = await connectControl(join(dir, "absent.sock")).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DaemonNotRunningError);
    expect((err as Error).message).toContain("is ringd running? start it with `ringd start`");
  });

  it("times out a call that gets neither progress nor a result", async () => {
    await serve();
    const client = await connectControl(sock, { callIdleTimeoutMs: 50 });
    await expect(client.call("hang")).rejects.toBeInstanceOf(ControlTimeoutError);
    // Progress keeps a long call alive past the idle timeout.
    expect(await client.call("steps", { n: 20 })).toEqual({ done: 20 });
    client.close();
  });

  it("reports permission denied to a user that does not own the socket", async () => {
    await serve();
    await chmod(dir, 0o755); // let the other user reach the socket itself, which stays 0600
    if (process.getuid?.() !== 0) {
      await chmod(sock, 0o000);
      await expect(connectControl(sock)).rejects.toBeInstanceOf(ControlPermissionError);
      return;
    }
    // As root, ask an unprivileged user (nobody) to connect, through the real client code.
    const client = pathToFileURL(join(import.meta.dirname, "control-client.ts")).href;
    const script = `import(${JSON.stringify(client)}).then((m) => m.connectControl(${JSON.stringify(sock)}))
      .then(() => console.log("connected"), (e) => console.log(e.name + ": " + e.message))`;
    const { stdout } = await execFileAsync(process.execPath, ["--import", "tsx", "-e", script], {
      uid: 65534,
      gid: 65534,
      cwd: import.meta.dirname,
      env: { ...process.env, HOME: "/tmp" },
    });
    expect(stdout).toMatch(/^ControlPermissionError: permission denied on .*the user that runs ringd/);
  });

  it("rejects every waiting call when the daemon goes away", async () => {
    const server = await serve();
    const client = await connectControl(sock);
    const call = client.call("hang").catch((e: unknown) => e);
    await eventually(() => expect(server.stats().requests).toBe(1));
    await server.close();
    expect(await call).toBeInstanceOf(ControlConnectionClosedError);
  });
});
