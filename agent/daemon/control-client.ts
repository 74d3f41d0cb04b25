/**
 * The client side of the control socket, used by ringctl: connect, call methods, receive progress.
 * Failures are named classes whose messages say what to do: DaemonNotRunningError ("is ringd
 * running? start it with `ringd start`"), ControlPermissionError, ControlTimeoutError,
 * ControlConnectionClosedError, and RemoteCallError for an error the daemon sent back.
 */
import { createConnection, type Socket } from "node:net";
import {
  ControlFrameReader,
  type ControlResponse,
  decodeControlResponse,
  encodeControlFrame,
} from "./control-frame.ts";
import {
  ControlConnectionClosedError,
  ControlPermissionError,
  ControlTimeoutError,
  DaemonNotRunningError,
  RemoteCallError,
} from "./errors.ts";

/** Default time to wait for the daemon to accept a connection. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
/** Default longest silence (no result, no progress) a call waits through before giving up. */
export const DEFAULT_CALL_IDLE_TIMEOUT_MS = 30_000;

/** Options of connectControl. */
export interface ConnectControlOptions {
  /** Give up connecting after this long (default DEFAULT_CONNECT_TIMEOUT_MS). */
  readonly connectTimeoutMs?: number;
  /**
   * Fail a call with ControlTimeoutError after this long without a result or progress message
   * (default DEFAULT_CALL_IDLE_TIMEOUT_MS; 0 waits forever). Progress restarts the clock, so a
   * long call that reports progress is never cut off.
   */
  readonly callIdleTimeoutMs?: number;
}

/** An open connection to the daemon. */
export interface ControlClient {
  /**
   * Call `method` with `params`; resolves with the result, calls `onProgress` for each progress
   * message before it. Rejects with RemoteCallError (the daemon's error), ControlTimeoutError or
   * ControlConnectionClosedError.
   */
  call(method: string, params?: unknown, onProgress?: (progress: unknown) => void): Promise<unknown>;
  /** Close the connection; calls still waiting reject with ControlConnectionClosedError. */
  close(): void;
}

interface Pending {
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: Error) => void;
  readonly onProgress: ((progress: unknown) => void) | undefined;
  timer: NodeJS.Timeout | undefined;
  readonly method: string;
}

/** Turn a connect failure into an error that says what to do. */
function connectError(path: string, err: NodeJS.ErrnoException): Error {
  switch (err.code) {
    case "ENOENT":
      return new DaemonNotRunningError(
        `no control socket at ${path}: is ringd running? start it with \`ringd start\``,
        { cause: err },
      );
    case "ECONNREFUSED":
      return new DaemonNotRunningError(
        `nothing listens on ${path} (a stale socket): is ringd running? start it with \`ringd start\``,
        { cause: err },
      );
    case "EACCES":
    case "EPERM":
      return new ControlPermissionError(
        `permission denied on ${path}: run ringctl as the user that runs ringd (the socket is mode 0600)`,
        { cause: err },
      );
    default:
      return new ControlConnectionClosedError(`cannot connect to ${path}: ${err.message}`, { cause: err });
  }
}

/** Connect to the daemon's control socket at `path`. */
export function connectControl(path: string, options: ConnectControlOptions = {}): Promise<ControlClient> {
  const connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const callIdleTimeoutMs = options.callIdleTimeoutMs ?? DEFAULT_CALL_IDLE_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new ControlTimeoutError(`ringd did not accept a connection on ${path} within ${connectTimeoutMs} ms`),
      );
    }, connectTimeoutMs);
    socket.once("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(connectError(path, err));
    });
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.removeAllListeners("error");
      resolve(openClient(socket, path, callIdleTimeoutMs));
    });
  });
}

function openClient(socket: Socket, path: string, callIdleTimeoutMs: number): ControlClient {
  const reader = new ControlFrameReader();
  const pending = new Map<number, Pending>();
  let nextId = 1;
  let failure: Error | undefined;

  const settle = (id: number, entry: Pending) => {
    clearTimeout(entry.timer);
    pending.delete(id);
  };
  const arm = (id: number, entry: Pending) => {
    clearTimeout(entry.timer);
    if (callIdleTimeoutMs <= 0) return;
    entry.timer = setTimeout(() => {
      settle(id, entry);
      entry.reject(
        new ControlTimeoutError(`ringd sent nothing for "${entry.method}" within ${callIdleTimeoutMs} ms`),
      );
    }, callIdleTimeoutMs);
  };
  const failAll = (err: Error) => {
    failure ??= err;
    for (const [id, entry] of pending) {
      settle(id, entry);
      entry.reject(failure);
    }
    socket.destroy();
  };
  const onMessage = (message: ControlResponse) => {
    if (message.id === null) {
      // The daemon refused this connection's input as a whole (it closes after this).
      const { name, message: text } = (message as { error: { name: string; message: string } }).error;
      failAll(new RemoteCallError(name, text));
      return;
    }
    const id = message.id;
    const entry = typeof id === "number" ? pending.get(id) : undefined;
    if (entry === undefined) return; // a late answer to a call that timed out
    if ("progress" in message) {
      arm(id as number, entry);
      entry.onProgress?.(message.progress);
    } else if ("result" in message) {
      settle(id as number, entry);
      entry.resolve(message.result);
    } else {
      settle(id as number, entry);
      entry.reject(new RemoteCallError(message.error.name, message.error.message));
    }
  };

  socket.on("data", (chunk: Buffer) => {
    try {
      for (const body of reader.push(chunk)) onMessage(decodeControlResponse(body));
    } catch (err) {
      failAll(new ControlConnectionClosedError(`bad answer from ringd on ${path}`, { cause: err }));
    }
  });
  socket.on("error", (err) =>
    failAll(new ControlConnectionClosedError(`connection to ${path} failed`, { cause: err })),
  );
  socket.on("close", () =>
    failAll(new ControlConnectionClosedError(`ringd closed the connection on ${path}`)),
  );

  return {
    call(method, params, onProgress) {
      if (failure !== undefined) return Promise.reject(failure);
      const id = nextId++;
      return new Promise((resolve, reject) => {
        const entry: Pending = { resolve, reject, onProgress, timer: undefined, method };
        pending.set(id, entry);
        arm(id, entry);
        try {
          socket.write(encodeControlFrame({ id, method, params: params ?? null }));
        } catch (err) {
          settle(id, entry);
          reject(err as Error);
        }
      });
    },
    close() {
      failAll(new ControlConnectionClosedError("the control connection was closed by this client"));
    },
  };
}
