/**
 * The ingest pipeline for a batch of envelopes (the items of one received frame), in phases: every
 * envelope is screened (id, dedup, decode, standing, authorize), then every screened one is verified
 * in one tight loop, then each verified one is admitted (payload and schema, per-action rule).
 *
 * Why: a signature check is most of an envelope's cost, and it runs faster back to back, with the
 * verifier's code and tables still in cache, than interleaved with the decoding and lookups around
 * it (bench/ingest.ts measures both ways against raw verification).
 *
 * What it keeps from `ingest` called item by item, by a caller that marks each accepted id seen:
 * the same checks in the same order for each envelope, every refusal counted with its reason, the
 * accepted messages in item order, and a second copy of an id within the batch counted `duplicate`
 * without a second signature check — but only once an earlier copy was accepted: a forged envelope
 * carrying an honest one's id cannot get the honest one dropped by coming first. What differs: the
 * whole batch is screened against the trust store and the seen-set as they were when the call began,
 * so a caller whose handling of one item changes either (an Announce, a Revoke) must not batch the
 * items after it; and a second copy is dropped without asking `ctx.hasSeen` about it.
 */
import { type FrameItem, MessageType, peekEnvelopeType } from "../protocol/index.ts";
import {
  type Accepted,
  admit,
  type IngestContext,
  ingest,
  type Screened,
  screen,
  verifyScreened,
} from "./ingest.ts";

/** One screened envelope of a batch and how its signature check went. */
interface Pending {
  readonly screened: Screened;
  /** True when an earlier item of the batch has the same id: checked only if that one is refused. */
  readonly repeat: boolean;
  verified: boolean;
}

/**
 * Take the items of a batch through the pipeline in phases. Returns the accepted messages in item
 * order; each refusal is counted with its reason, as by `ingest`. Never throws on bad input.
 */
export function ingestMany(ctx: IngestContext, items: readonly FrameItem[], nowMs: number): Accepted[] {
  const pending: Pending[] = [];
  const ids = new Set<string>();
  for (const item of items) {
    const screened = screen(ctx, item.envelope, item.hops, nowMs);
    if (screened === null) continue;
    const repeat = ids.has(screened.id);
    if (!repeat) ids.add(screened.id);
    pending.push({ screened, repeat, verified: false });
  }
  for (const p of pending) if (!p.repeat) p.verified = verifyScreened(ctx, p.screened);
  const accepted: Accepted[] = [];
  const acceptedIds = new Set<string>();
  for (const p of pending) {
    if (p.repeat) {
      if (acceptedIds.has(p.screened.id)) {
        ctx.counters.inc("duplicate");
        continue;
      }
      p.verified = verifyScreened(ctx, p.screened);
    }
    if (!p.verified) continue;
    const msg = admit(ctx, p.screened);
    if (msg === null) continue;
    accepted.push(msg);
    acceptedIds.add(msg.id);
  }
  return accepted;
}

/**
 * Take a received frame's items in, handing each accepted message to `apply` in item order before
 * the next batch is screened; returns how many were accepted. Batches end after each Announce or
 * Revoke, whose handling changes what the items after it are checked against, so every item is
 * checked against the trust its earlier items left, as item-by-item ingest would. A frame of one
 * item skips the batch's bookkeeping.
 */
export function ingestFrame(
  ctx: IngestContext,
  items: readonly FrameItem[],
  nowMs: number,
  apply: (msg: Accepted) => void,
): number {
  if (items.length === 1) {
    const only = items[0]!;
    const msg = ingest(ctx, only.envelope, only.hops, nowMs);
    if (msg === null) return 0;
    apply(msg);
    return 1;
  }
  let count = 0;
  for (let start = 0; start < items.length; ) {
    const end = batchEnd(items, start);
    const batch = start === 0 && end === items.length ? items : items.slice(start, end);
    for (const msg of ingestMany(ctx, batch, nowMs)) {
      count++;
      apply(msg);
    }
    start = end;
  }
  return count;
}

/** Where the batch that starts at `from` ends (exclusive): after the first Announce or Revoke. */
function batchEnd(items: readonly FrameItem[], from: number): number {
  for (let i = from; i < items.length; i++) {
    const type = peekEnvelopeType(items[i]!.envelope);
    if (type === MessageType.Announce || type === MessageType.Revoke) return i + 1;
  }
  return items.length;
}
