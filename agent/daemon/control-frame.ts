/**
 * The control socket's framing and message shapes. Every message is one frame:
 *
 * ```
 *  0               4
 * +---------------+--------------------------------+
 * | length (u32,  | JSON, UTF-8, `length` bytes    |
 * | big-endian)   | (at most MAX_CONTROL_FRAME_BYTES)
 * +---------------+--------------------------------+
 * ```
 *
 * Client to daemon: `{ id, method, params }`. Daemon to client: `{ id, progress }` (zero or more,
 * for a long call), then exactly one of `{ id, result }` or `{ id, error: { name, message } }`.
 * A frame the daemon cannot read (too long, not JSON, wrong shape) is answered with `id: null`
 * and the connection is closed.
 */
import { FrameTooLargeError, MalformedMessageError } from "./errors.ts";

/** Largest JSON body of one control frame, either direction (1 MiB). */
export const MAX_CONTROL_FRAME_BYTES = 1024 * 1024;
/** Bytes of the length prefix. */
export const CONTROL_FRAME_HEADER_BYTES = 4;
/** Longest method name a request may carry. */
export const MAX_METHOD_NAME_BYTES = 128;

/** A call id: chosen by the client, echoed by the daemon. */
export type ControlId = number | string;

/** A request from ringctl (or any local client) to the daemon. */
export interface ControlRequest {
  readonly id: ControlId;
  readonly method: string;
  readonly params?: unknown;
}

/** An error as it travels back to the client: the class name and its message. */
export interface ControlErrorBody {
  readonly name: string;
  readonly message: string;
}

/** A message from the daemon: progress for a call, its result, or its error. */
export type ControlResponse =
  | { readonly id: ControlId; readonly progress: unknown }
  | { readonly id: ControlId; readonly result: unknown }
  | { readonly id: ControlId | null; readonly error: ControlErrorBody };

/** Encode one message as a frame. Throws FrameTooLargeError if its JSON exceeds the limit. */
export function encodeControlFrame(message: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(message) ?? "null", "utf8");
  if (body.length > MAX_CONTROL_FRAME_BYTES) {
    throw new FrameTooLargeError(
      `control frame of ${body.length} bytes exceeds MAX_CONTROL_FRAME_BYTES (${MAX_CONTROL_FRAME_BYTES})`,
    );
  }
  const frame = Buffer.allocUnsafe(CONTROL_FRAME_HEADER_BYTES + body.length);
  frame.writeUInt32BE(body.length, 0);
  body.copy(frame, CONTROL_FRAME_HEADER_BYTES);
  return frame;
}

/**
 * Splits a byte stream into frame bodies. `push` returns every complete body; it throws
 * FrameTooLargeError as soon as a header declares more than the limit (before buffering it).
 * Holds at most one frame's bytes plus one chunk. Bodies share memory with the input: decode them
 * before the next push.
 */
export class ControlFrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;

  /** Feed bytes; returns the complete frame bodies they finish, in order. */
  push(chunk: Buffer): Buffer[] {
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    const bodies: Buffer[] = [];
    for (;;) {
      if (this.buffered < CONTROL_FRAME_HEADER_BYTES) return bodies;
      if (this.chunks[0]!.length < CONTROL_FRAME_HEADER_BYTES) this.flatten();
      const length = this.chunks[0]!.readUInt32BE(0);
      if (length > MAX_CONTROL_FRAME_BYTES) {
        throw new FrameTooLargeError(
          `control frame declares ${length} bytes; MAX_CONTROL_FRAME_BYTES is ${MAX_CONTROL_FRAME_BYTES}`,
        );
      }
      const end = CONTROL_FRAME_HEADER_BYTES + length;
      // Copy chunks together only once the whole frame is here, so a large frame costs one copy.
      if (this.buffered < end) return bodies;
      this.flatten();
      const all = this.chunks[0]!;
      bodies.push(all.subarray(CONTROL_FRAME_HEADER_BYTES, end));
      const rest = all.subarray(end);
      this.chunks = rest.length > 0 ? [rest] : [];
      this.buffered = rest.length;
    }
  }

  private flatten(): void {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks, this.buffered)];
  }
}

const isObject = (x: unknown): x is Record<string, unknown> =>
  typeof x === "object" && x !== null && !Array.isArray(x);
const isId = (x: unknown): x is ControlId =>
  (typeof x === "number" && Number.isSafeInteger(x)) || (typeof x === "string" && x.length <= 64);

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
  } catch (err) {
    throw new MalformedMessageError("control frame is not UTF-8 JSON", { cause: err });
  }
}

/** Parse and check a request body. Throws MalformedMessageError naming what is wrong. */
export function decodeControlRequest(body: Buffer): ControlRequest {
  const value = parseJson(body);
  if (!isObject(value)) throw new MalformedMessageError("control request must be a JSON object");
  if (!isId(value.id)) {
    throw new MalformedMessageError("control request needs an id: an integer or a string of at most 64");
  }
  const method = value.method;
  if (
    typeof method !== "string" ||
    method.length === 0 ||
    Buffer.byteLength(method) > MAX_METHOD_NAME_BYTES
  ) {
    throw new MalformedMessageError(
      `control request needs a method: a non-empty string of at most ${MAX_METHOD_NAME_BYTES} bytes`,
    );
  }
  return { id: value.id, method, params: value.params };
}

/** Parse and check a response body (client side). Throws MalformedMessageError. */
export function decodeControlResponse(body: Buffer): ControlResponse {
  const value = parseJson(body);
  if (!isObject(value) || !(isId(value.id) || value.id === null)) {
    throw new MalformedMessageError("control response must be an object with an id");
  }
  if ("error" in value) {
    const e = value.error;
    if (!isObject(e) || typeof e.name !== "string" || typeof e.message !== "string") {
      throw new MalformedMessageError("control error must be { name, message }");
    }
    return { id: value.id, error: { name: e.name, message: e.message } };
  }
  if (value.id === null) throw new MalformedMessageError("only an error may carry id null");
  if ("progress" in value) return { id: value.id, progress: value.progress };
  if ("result" in value) return { id: value.id, result: value.result };
  throw new MalformedMessageError("control response needs result, error or progress");
}
