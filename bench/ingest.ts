/**
 * Ingest-pipeline benchmark: how close the whole inbound path (message id → dedup → decode →
 * authorize through the trust chain → verify → payload decode and schema check) comes to the raw
 * ed25519 verify rate of the same library on the same CPU, measured in the same run; and what a
 * duplicate costs when it is dropped before any signature check.
 *
 * Workload: `senders` certified ring-0 nodes (chains already checked once, as in steady state), each
 * sending broadcasts with a `payloadBytes` application payload; every envelope is distinct, so each
 * one really is verified. Dedup asks the node's own seen-set (SeenSet with the gossip defaults'
 * limit), filled with other ids so that it ends each pass full, as a busy node's is. The baseline verifies the very same (signature, signed bytes, key) triples
 * with sodium-native directly, so the ratio isolates what the pipeline adds. The pipeline is measured
 * two ways: `ingest` one envelope at a time, and `ingestFrame` (what MeshNode does with a received
 * frame) over frames of MAX_FRAME_ITEMS envelopes (all screened, then all verified back to back,
 * then all admitted).
 *
 * Each side is timed by the wall clock and by the process's CPU time. On a machine shared with other
 * work the wall clock also counts the time the process waited for a core; CPU time does not, so it
 * is the closer measure of a rate "per core". Both ratios are reported.
 *
 * Run directly to print JSON: `npx tsx bench/ingest.ts`.
 */
import { pathToFileURL } from "node:url";
import sodium from "sodium-native";
import {
  decodeEnvelope,
  encodePayload,
  envelopeIdKey,
  type FrameItem,
  generateIdentity,
  issueCertificate,
  keyHex,
  MAX_FRAME_ITEMS,
  MESSAGE_ID_BYTES,
  MessageType,
  messageIdKey,
  sealEnvelope,
  signedMessage,
} from "../protocol/index.ts";
import {
  Counters,
  defaultGossipConfig,
  ingest,
  ingestFrame,
  randomInt,
  SeenSet,
  seededRng,
  TrustStore,
} from "../rings/index.ts";

/** Options of measureIngest. */
export interface IngestBenchOptions {
  /** Distinct envelopes in the workload (default 20,000). */
  readonly envelopes?: number;
  /** Certified senders they come from (default 50). */
  readonly senders?: number;
  /** Application payload bytes per broadcast (default 200). */
  readonly payloadBytes?: number;
  /** Passes over the workload per measurement; the best pass counts (default 3). */
  readonly passes?: number;
}

/** Results, in operations per second on one core. */
export interface IngestRates {
  readonly envelopes: number;
  readonly envelopeBytes: number;
  /** sodium-native crypto_sign_verify_detached over the same signed bytes. */
  readonly rawVerifyPerSec: number;
  /** ingest() of new envelopes, every one verified and accepted. */
  readonly ingestPerSec: number;
  /** ingestPerSec / rawVerifyPerSec (goal ≥ 0.95). */
  readonly ingestRatio: number;
  /** ingestFrame() over frames of MAX_FRAME_ITEMS new envelopes: MeshNode's path. */
  readonly ingestFramePerSec: number;
  /** ingestFramePerSec / rawVerifyPerSec (goal ≥ 0.95). */
  readonly ingestFrameRatio: number;
  /** ingestRatio with each side timed by the process's CPU time instead of the wall clock. */
  readonly ingestRatioCpu: number;
  /** ingestFrameRatio with each side timed by the process's CPU time. */
  readonly ingestFrameRatioCpu: number;
  /** ingest() of envelopes already seen: dropped after the id lookup, before any check. */
  readonly duplicatePerSec: number;
  /** Cost of a duplicate as a fraction of one raw verify: rawVerifyPerSec / duplicatePerSec (goal < 0.02). */
  readonly duplicateCostOfVerify: number;
}

const START_MS = Date.UTC(2026, 0, 1);
/** Envelopes per alternation between the sides: 16 whole frames, about 60 ms of verifying. */
const SLICE = 16 * MAX_FRAME_ITEMS;

/** Measure the ingest pipeline against raw verification; pure CPU, one core. */
export function measureIngest(opts: IngestBenchOptions = {}): IngestRates {
  const count = opts.envelopes ?? 20_000;
  const senderCount = opts.senders ?? 50;
  const payloadBytes = opts.payloadBytes ?? 200;
  const passes = opts.passes ?? 5;

  const root = generateIdentity(new Uint8Array(32).fill(7));
  const certificates = new Map<string, Uint8Array>();
  const senders = Array.from({ length: senderCount }, (_, i) => {
    const identity = generateIdentity(new Uint8Array(32).fill(i + 10));
    certificates.set(
      keyHex(identity.publicKey),
      issueCertificate(root, {
        subject: identity.publicKey,
        issuer: root.publicKey,
        ring: 0,
        roles: ["node"],
        compartment: ["bench"],
        tiers: [],
        serial: i + 1,
        notBeforeMs: START_MS - 60_000,
        expiresMs: START_MS + 86_400_000,
      }),
    );
    return identity;
  });
  const data = new Uint8Array(payloadBytes).map((_, i) => i & 0xff);
  const envelopes = Array.from({ length: count }, (_, i) =>
    sealEnvelope(
      senders[i % senderCount]!,
      MessageType.Broadcast,
      encodePayload(MessageType.Broadcast, { topic: "bench", data, sentAtMs: START_MS + i }),
    ),
  );
  // The baseline's inputs: exactly the bytes the pipeline verifies, prepared outside the timing.
  const triples = envelopes.map((bytes) => {
    const env = decodeEnvelope(bytes);
    return { signature: env.signature, message: signedMessage(env.type, env.payload), key: env.sender };
  });

  const perSec = (run: () => void): number => {
    const start = performance.now();
    run();
    return count / ((performance.now() - start) / 1000);
  };

  // New envelopes: a fresh seen-set each pass, trust store warm (chains checked, as in steady state).
  const trust = new TrustStore(root.publicKey, { source: (hex) => certificates.get(hex) });
  for (const s of senders) trust.standing(keyHex(s.publicKey), START_MS);
  const counters = new Counters();
  const { seenLimit, seenTtlMs } = defaultGossipConfig();
  /** A seen-set holding `seenLimit - count` ids of earlier traffic, so the workload fills it up. */
  const fillRng = seededRng(1);
  const busySeenSet = (): SeenSet => {
    const set = new SeenSet(seenLimit, seenTtlMs);
    const filler = new Uint8Array(MESSAGE_ID_BYTES);
    for (let i = 0; i < Math.max(0, seenLimit - count); i++) {
      for (let b = 0; b < filler.length; b++) filler[b] = randomInt(fillRng, 256);
      set.add(messageIdKey(filler), START_MS);
    }
    return set;
  };
  let seen = busySeenSet();
  const ctx = { trust, ring: 0 as const, hasSeen: (id: string) => seen.has(id), counters };
  const frames: FrameItem[][] = [];
  for (let from = 0; from < count; from += MAX_FRAME_ITEMS) {
    frames.push(envelopes.slice(from, from + MAX_FRAME_ITEMS).map((envelope) => ({ hops: 3, envelope })));
  }

  let verified = 0;
  // The baseline, ingest one envelope at a time, ingestFrame a frame at a time.
  const sides: Side[] = [
    side((from, to) => {
      for (let i = from; i < to; i++) {
        const t = triples[i]!;
        if (sodium.crypto_sign_verify_detached(t.signature, t.message, t.key)) verified++;
      }
    }),
    side((from, to) => {
      for (let i = from; i < to; i++) {
        const accepted = ingest(ctx, envelopes[i]!, 3, START_MS);
        if (accepted === null)
          throw new Error(`ingest refused an honest envelope: ${JSON.stringify(counters.snapshot())}`);
        seen.add(accepted.id, START_MS);
      }
    }),
    side((from, to) => {
      // A slice starts on a frame (SLICE is whole frames); the last one may end within one.
      for (let f = from / MAX_FRAME_ITEMS; f < Math.ceil(to / MAX_FRAME_ITEMS); f++) {
        const frame = frames[f]!;
        const accepted = ingestFrame(ctx, frame, START_MS, (msg) => seen.add(msg.id, START_MS));
        if (accepted !== frame.length)
          throw new Error(`ingestFrame refused an honest envelope: ${JSON.stringify(counters.snapshot())}`);
      }
    }),
  ];
  // The sides alternate in slices of SLICE envelopes, in an order that rotates from slice to slice,
  // and each side's time is summed over all its slices: load from elsewhere on the machine (other
  // processes come and go within a second) then falls on every side alike, so the ratios hold even
  // when the absolute rates do not. The rates reported are over the summed times.
  let rotation = 0;
  for (let p = 0; p < passes; p++) {
    const seenBySide = sides.map(busySeenSet);
    for (let from = 0; from < count; from += SLICE) {
      const to = Math.min(count, from + SLICE);
      for (let k = 0; k < sides.length; k++) {
        const i = (k + rotation) % sides.length;
        seen = seenBySide[i]!;
        timeSlice(sides[i]!, from, to);
      }
      rotation++;
    }
  }
  if (verified !== count * passes) throw new Error("baseline failed to verify a valid signature");
  const [baseline, one, many] = sides as [Side, Side, Side];
  const rate = (ms: number) => (count * passes) / (ms / 1000);
  const rawVerifyPerSec = rate(baseline.wallMs);
  const ingestPerSec = rate(one.wallMs);
  const ingestFramePerSec = rate(many.wallMs);

  // Duplicates: every id is already in the seen-set.
  seen = busySeenSet();
  for (const bytes of envelopes) seen.add(envelopeIdKey(bytes)!, START_MS);
  const before = counters.get("duplicate");
  let duplicatePerSec = 0;
  for (let p = 0; p < passes; p++) {
    duplicatePerSec = Math.max(
      duplicatePerSec,
      perSec(() => {
        for (const bytes of envelopes) ingest(ctx, bytes, 3, START_MS);
      }),
    );
  }
  if (counters.get("duplicate") - before !== count * passes)
    throw new Error("duplicates were not all dropped");

  return {
    envelopes: count,
    envelopeBytes: envelopes[0]!.byteLength,
    rawVerifyPerSec: Math.round(rawVerifyPerSec),
    ingestPerSec: Math.round(ingestPerSec),
    ingestRatio: round3(ingestPerSec / rawVerifyPerSec),
    ingestFramePerSec: Math.round(ingestFramePerSec),
    ingestFrameRatio: round3(ingestFramePerSec / rawVerifyPerSec),
    ingestRatioCpu: round3(baseline.cpuMs / one.cpuMs),
    ingestFrameRatioCpu: round3(baseline.cpuMs / many.cpuMs),
    duplicatePerSec: Math.round(duplicatePerSec),
    duplicateCostOfVerify: round3(rawVerifyPerSec / duplicatePerSec),
  };
}

/** One side of the comparison: what it runs over envelopes [from, to), and its summed times. */
interface Side {
  readonly run: (from: number, to: number) => void;
  wallMs: number;
  cpuMs: number;
}

function side(run: (from: number, to: number) => void): Side {
  return { run, wallMs: 0, cpuMs: 0 };
}

/** Run one slice of a side, adding its wall-clock and CPU (user + system) time. */
function timeSlice(s: Side, from: number, to: number): void {
  const cpu = process.cpuUsage();
  const start = performance.now();
  s.run(from, to);
  s.wallMs += performance.now() - start;
  const used = process.cpuUsage(cpu);
  s.cpuMs += (used.user + used.system) / 1000;
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  console.log(JSON.stringify(measureIngest(), null, 2));
}
