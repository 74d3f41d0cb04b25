/**
 * The link-level frame peers send each other: a bundle of envelopes, each with its own hop budget,
 * so a SWIM probe carries piggybacked gossip in one datagram. Layout (v1, big-endian):
 *
 *   +---------+-------+  then `count` items:  +------+------------+----------------+
 *   | version | count |                       | hops | env length | envelope bytes |
 *   | u8 = 1  | u8    |                       | u8   | u32 = n    | n bytes        |
 *   +---------+-------+                       +------+------------+----------------+
 *
 * Hops are outside the signature on purpose: a forwarder decrements them without re-signing.
 * The frame is not signed; each envelope is. Decoded envelopes are views into the frame.
 */

import { Reader } from "./codec.ts";
import { EncodeError, LimitExceededError, TruncatedError, UnsupportedVersionError } from "./errors.ts";
import { FRAME_VERSION, MAX_ENVELOPE_BYTES, MAX_FRAME_BYTES, MAX_FRAME_ITEMS, MAX_HOPS } from "./limits.ts";

/** One item of a frame: an envelope and the hops it may still travel. */
export interface FrameItem {
  readonly hops: number;
  readonly envelope: Uint8Array;
}

/** Bytes of a frame header (version + count). */
export const FRAME_HEADER_BYTES = 2;
/** Bytes of per-item overhead (hops + length). */
export const FRAME_ITEM_OVERHEAD_BYTES = 5;

/** Bytes `items` will take once framed (to pack frames up to MAX_FRAME_BYTES). */
export function frameSize(items: readonly FrameItem[]): number {
  let n = FRAME_HEADER_BYTES;
  for (const item of items) n += FRAME_ITEM_OVERHEAD_BYTES + item.envelope.length;
  return n;
}

/** Encode a frame; throws EncodeError when it would break a limit the decoder enforces. */
export function encodeFrame(items: readonly FrameItem[]): Uint8Array {
  if (items.length > MAX_FRAME_ITEMS)
    throw new EncodeError(`frame of ${items.length} items exceeds ${MAX_FRAME_ITEMS}`);
  const size = frameSize(items);
  if (size > MAX_FRAME_BYTES) throw new EncodeError(`frame of ${size} bytes exceeds ${MAX_FRAME_BYTES}`);
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  out[0] = FRAME_VERSION;
  out[1] = items.length;
  let at = FRAME_HEADER_BYTES;
  for (const { hops, envelope } of items) {
    if (!Number.isInteger(hops) || hops < 0 || hops > MAX_HOPS)
      throw new EncodeError(`hops ${hops} outside 0..${MAX_HOPS}`);
    if (envelope.length > MAX_ENVELOPE_BYTES)
      throw new EncodeError(`envelope of ${envelope.length} bytes too large`);
    out[at] = hops;
    view.setUint32(at + 1, envelope.length);
    out.set(envelope, at + FRAME_ITEM_OVERHEAD_BYTES);
    at += FRAME_ITEM_OVERHEAD_BYTES + envelope.length;
  }
  return out;
}

/**
 * Decode a frame into items whose envelopes are views into `bytes` (not yet decoded or verified).
 * A view keeps the whole frame's buffer alive: copy (`slice()`) an envelope you keep for long,
 * e.g. in an anti-entropy store.
 * Throws LimitExceededError, UnsupportedVersionError, TruncatedError or TrailingBytesError.
 */
export function decodeFrame(bytes: Uint8Array): FrameItem[] {
  if (bytes.length > MAX_FRAME_BYTES) {
    throw new LimitExceededError(`frame of ${bytes.length} bytes exceeds ${MAX_FRAME_BYTES}`);
  }
  const r = new Reader(bytes);
  const version = r.u8("frame version");
  if (version !== FRAME_VERSION) throw new UnsupportedVersionError(`frame version ${version}`);
  const count = r.u8("frame count");
  if (count > MAX_FRAME_ITEMS)
    throw new LimitExceededError(`frame of ${count} items exceeds ${MAX_FRAME_ITEMS}`);
  if (count * FRAME_ITEM_OVERHEAD_BYTES > r.remaining()) {
    throw new TruncatedError(`frame: ${count} items cannot fit in ${r.remaining()} bytes`);
  }
  const items: FrameItem[] = [];
  for (let i = 0; i < count; i++) {
    const hops = r.u8("frame hops");
    if (hops > MAX_HOPS) throw new LimitExceededError(`hops ${hops} exceeds ${MAX_HOPS}`);
    const envelope = r.bytes(MAX_ENVELOPE_BYTES, "frame envelope");
    items.push({ hops, envelope });
  }
  r.end("frame");
  return items;
}
