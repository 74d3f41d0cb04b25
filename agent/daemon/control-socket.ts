/**
 * The daemon's local control socket: a UNIX domain socket file, mode 0600, so only the user that
 * runs ringd (and root) may command it. ringctl speaks length-prefixed JSON over it (framing and
 * shapes in control-frame.ts). The server never crashes on what a client sends: an oversized or
 * malformed frame is answered with an error, counted by reason, and its connection closed; other
 * connections keep being served.
 *
 * Start-up rules for the socket path: if a daemon answers there, refuse (SocketInUseError); if a
 * socket file is there but nobody listens (a crashed daemon), remove it; if something that is not
 * a socket is there, refuse (SocketPathOccupiedError) rather than delete it.
 *
 * The client side (connectControl) lives in control-client.ts and is re-exported here.
 */
import { lstat, mkdir, stat, unlink } from "node:fs/promises";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { dirname } from "node:path";
import {
  type ControlErrorBody,
  ControlFrameReader,
  type ControlId,
  type ControlRequest,
  decodeControlRequest,
  encodeControlFrame,
  MAX_CONTROL_FRAME_BYTES,
} from "./control-frame.ts";
import {
  type DaemonError,
  FrameTooLargeError,
  MalformedMessageError,
  SlowReaderError,
  SocketInUseError,
  SocketModeError,
  SocketPathOccupiedError,
  TooManyCallsError,
  UnknownMethodError,
} from "./errors.ts";

export * from "./control-client.ts";

/** The socket file's permission bits: owner read/write only. */
export const CONTROL_SOCKET_MODE = 0o600;
/** Most client connections served at once; more are refused by the kernel's backlog/closed. */
export const MAX_CONTROL_CONNECTIONS = 64;
/** Most calls one connection may have in flight; beyond it a call is answered with an error. */
export const MAX_CONTROL_CALLS_PER_CONNECTION = 32;
/**
 * Most bytes queued for one client that does not read; past it the connection is closed, so a
 * stuck ringctl cannot make the daemon buffer without bound.
 */
export const MAX_CONTROL_WRITE_BUFFER_BYTES = 8 * MAX_CONTROL_FRAME_BYTES;
/** How long serveControl waits for a daemon at an existing path to answer before calling it stale. */
export const STALE_PROBE_TIMEOUT_MS = 1_000;

/** What a handler may do besides returning: report progress, and notice that the caller left. */
export interface ControlCallContext {
  /** Send `{ id, progress }` to the caller now (dropped silently if the caller has gone). */
  progress(progress: unknown): void;
  /** Aborted when the caller's connection closes or the server shuts down. */
  readonly signal: AbortSignal;
}

/** A method's implementation: params in, result out (or a thrown error, sent back by name). */
export type ControlHandler = (params: unknown, ctx: ControlCallContext) => unknown | Promise<unknown>;

/** Counters of a running control server. Rejections are keyed by DaemonError `reason`. */
export interface ControlServerStats {
  /** Connections accepted since start. */
  readonly connections: number;
  /** Connections open now. */
  readonly openConnections: number;
  /** Well-formed requests received (known method or not). */
  readonly requests: number;
  /**
   * Inputs and clients refused, by reason: "frame-too-large", "malformed", "unknown-method",
   * "too-many-calls", "slow-reader".
   */
  readonly rejected: Readonly<Record<string, number>>;
  /** Handlers that threw. */
  readonly handlerErrors: number;
}

/** A running control server. */
export interface ControlServer {
  /** The socket path it listens on. */
  readonly path: string;
  /** A snapshot of its counters. */
  stats(): ControlServerStats;
  /** Stop listening, close every connection, abort running handlers and remove the socket file. */
  close(): Promise<void>;
}

/** Options of serveControl. */
export interface ServeControlOptions {
  /**
   * Called with a reason for each rejected input, handler failure ("handler-error") and server
   * error ("server-error"), e.g. to log it. What it throws is ignored.
   */
  readonly onReject?: (reason: string, err: Error) => void;
}

/** What the path holds: nothing, a dead socket, a live one, or something else. */
async function probePath(path: string): Promise<"absent" | "stale" | "live" | "not-socket"> {
  let info: Awaited<ReturnType<typeof lstat>>;
  try {
    info = await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return "absent";
    throw err;
  }
  if (!info.isSocket()) return "not-socket";
  return await new Promise((resolve) => {
    const socket = createConnection(path);
    const done = (answer: "stale" | "live") => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    // A daemon that accepts but hangs still owns the path: treat a slow accept as live.
    const timer = setTimeout(() => done("live"), STALE_PROBE_TIMEOUT_MS);
    socket.once("connect", () => done("live"));
    socket.once("error", (err: NodeJS.ErrnoException) =>
      done(err.code === "ECONNREFUSED" || err.code === "ENOENT" ? "stale" : "live"),
    );
  });
}

function listenOwnerOnly(server: Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      server.off("listening", onListening);
      reject(
        err.code === "EADDRINUSE"
          ? new SocketInUseError(`another daemon took ${path} while this one started`, { cause: err })
          : err,
      );
    };
    const onListening = () => {
      server.off("error", onError);
      resolve();
    };
    server.once("error", onError);
    server.once("listening", onListening);
    // bind(2) happens synchronously inside listen(), so the umask covers exactly the socket file.
    const previous = process.umask(0o177);
    try {
      server.listen(path);
    } finally {
      process.umask(previous);
    }
  });
}

/**
 * Listen on `path` (creating its directory with mode 0700 if missing) and serve `handlers` by
 * method name. Resolves once the socket file exists with mode 0600. Rejects with SocketInUseError
 * if a daemon already answers there, SocketPathOccupiedError if a non-socket file is there, and
 * SocketModeError if the mode cannot be made 0600.
 */
export async function serveControl(
  path: string,
  handlers: Readonly<Record<string, ControlHandler>>,
  options: ServeControlOptions = {},
): Promise<ControlServer> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const found = await probePath(path);
  if (found === "live") throw new SocketInUseError(`a daemon is already listening on ${path}`);
  if (found === "not-socket") {
    throw new SocketPathOccupiedError(`${path} exists and is not a socket; remove it or choose another path`);
  }
  if (found === "stale") await unlink(path).catch(ignoreMissing);

  const rejected: Record<string, number> = {};
  let connections = 0;
  let requests = 0;
  let handlerErrors = 0;
  const open = new Set<Socket>();
  const report = (reason: string, err: Error) => {
    try {
      options.onReject?.(reason, err);
    } catch {
      // A failing observer must not take the control socket down with it.
    }
  };
  const reject = (err: DaemonError) => {
    rejected[err.reason] = (rejected[err.reason] ?? 0) + 1;
    report(err.reason, err);
  };

  const server = createServer((socket) => {
    connections++;
    open.add(socket);
    serveConnection(socket);
  });
  server.maxConnections = MAX_CONTROL_CONNECTIONS;

  function serveConnection(socket: Socket): void {
    const reader = new ControlFrameReader();
    const inFlight = new Map<ControlId, AbortController>();
    let closing = false;
    const send = (message: unknown) => {
      if (closing || socket.destroyed) return;
      let frame: Buffer;
      try {
        frame = encodeControlFrame(message);
      } catch (err) {
        const id = (message as { id: ControlId }).id;
        frame = encodeControlFrame({ id, error: errorBody(err) });
      }
      socket.write(frame);
      if (socket.writableLength > MAX_CONTROL_WRITE_BUFFER_BYTES) {
        reject(new SlowReaderError(`a client left ${socket.writableLength} bytes unread; closing it`));
        closing = true;
        socket.destroy();
      }
    };
    const refuseAndClose = (err: DaemonError) => {
      reject(err);
      send({ id: null, error: errorBody(err) });
      closing = true;
      socket.end(() => socket.destroy());
    };
    socket.on("data", (chunk: Buffer) => {
      if (closing) return;
      let bodies: Buffer[];
      try {
        bodies = reader.push(chunk);
      } catch (err) {
        refuseAndClose(err instanceof FrameTooLargeError ? err : new MalformedMessageError("bad frame"));
        return;
      }
      for (const body of bodies) {
        let request: ControlRequest;
        try {
          request = decodeControlRequest(body);
        } catch (err) {
          refuseAndClose(
            err instanceof MalformedMessageError ? err : new MalformedMessageError("bad request"),
          );
          return;
        }
        requests++;
        void runCall(request);
      }
    });
    socket.on("error", () => {}); // a client vanishing mid-write is normal; "close" follows.
    socket.on("close", () => {
      closing = true;
      open.delete(socket);
      for (const controller of inFlight.values()) controller.abort();
      inFlight.clear();
    });

    async function runCall(request: ControlRequest): Promise<void> {
      const { id, method } = request;
      const handler = Object.hasOwn(handlers, method) ? handlers[method] : undefined;
      if (handler === undefined) {
        const err = new UnknownMethodError(`unknown method "${method}"`);
        reject(err);
        send({ id, error: errorBody(err) });
        return;
      }
      if (inFlight.has(id) || inFlight.size >= MAX_CONTROL_CALLS_PER_CONNECTION) {
        const err = new TooManyCallsError(
          inFlight.has(id)
            ? `call id ${JSON.stringify(id)} is already in flight`
            : `more than MAX_CONTROL_CALLS_PER_CONNECTION (${MAX_CONTROL_CALLS_PER_CONNECTION}) calls in flight`,
        );
        reject(err);
        send({ id, error: errorBody(err) });
        return;
      }
      const controller = new AbortController();
      inFlight.set(id, controller);
      const ctx: ControlCallContext = {
        progress: (progress) => {
          if (!controller.signal.aborted) send({ id, progress: progress ?? null });
        },
        signal: controller.signal,
      };
      try {
        const result = await handler(request.params, ctx);
        if (!controller.signal.aborted) send({ id, result: result ?? null });
      } catch (err) {
        handlerErrors++;
        report("handler-error", err instanceof Error ? err : new Error(String(err)));
        if (!controller.signal.aborted) send({ id, error: errorBody(err) });
      } finally {
        if (inFlight.get(id) === controller) inFlight.delete(id);
      }
    }
  }

  await listenOwnerOnly(server, path);
  // After listening, an error (e.g. EMFILE on accept) must be reported, not crash the daemon.
  server.on("error", (err) => report("server-error", err));
  let ino: number;
  try {
    ino = await verifyMode(path);
  } catch (err) {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await unlink(path).catch(ignoreMissing);
    throw err;
  }

  let closed: Promise<void> | undefined;
  return {
    path,
    stats: () => ({
      connections,
      openConnections: open.size,
      requests,
      rejected: { ...rejected },
      handlerErrors,
    }),
    close: () => {
      closed ??= (async () => {
        const done = new Promise<void>((resolve) => server.close(() => resolve()));
        for (const socket of open) socket.destroy();
        await done;
        // Remove the file only if it is still ours (a successor may have reclaimed the path).
        const now = await stat(path).catch(() => undefined);
        if (now?.ino === ino) await unlink(path).catch(ignoreMissing);
      })();
      return closed;
    },
  };
}

async function verifyMode(path: string): Promise<number> {
  const info = await stat(path);
  if ((info.mode & 0o777) === CONTROL_SOCKET_MODE) return info.ino;
  throw new SocketModeError(
    `control socket ${path} has mode 0${(info.mode & 0o777).toString(8)}, want 0${CONTROL_SOCKET_MODE.toString(8)}`,
  );
}

function errorBody(err: unknown): ControlErrorBody {
  if (err instanceof Error) return { name: err.name, message: err.message };
  return { name: "Error", message: String(err) };
}

function ignoreMissing(err: NodeJS.ErrnoException): void {
  if (err.code !== "ENOENT") throw err;
}
