/**
 * Verify-rate benchmark: ed25519 verifications per second on one core for node:crypto
 * (OpenSSL, pre-made KeyObject), libsodium-wrappers (WebAssembly) and sodium-native (native
 * libsodium), on 200-byte messages; plus the rate of `envelopeIdKey` (the cost of dropping a
 * duplicate before any signature check). Run directly to print JSON: `npx tsx bench/verify.ts`.
 * Also reports whether each verifier refuses the trivial small-order forgery and s + L.
 */
import { createPublicKey, verify as nodeVerify } from "node:crypto";
import { pathToFileURL } from "node:url";
import sodiumWrappers from "libsodium-wrappers";
import sodium from "sodium-native";
import {
  envelopeIdKey,
  generateIdentity,
  MessageType,
  openEnvelope,
  sealEnvelope,
  sign,
} from "../protocol/index.ts";

/** Options for measureVerifyRates. */
export interface VerifyBenchOptions {
  /** Wall time spent per verifier, in milliseconds (default 1000). */
  readonly durationMs?: number;
  /** Message size in bytes (default 200). */
  readonly messageBytes?: number;
}

/** Results: operations per second, and whether each verifier refused malleated/forged input. */
export interface VerifyRates {
  readonly messageBytes: number;
  readonly opsPerSec: {
    readonly nodeCrypto: number;
    readonly libsodiumWrappers: number;
    readonly sodiumNative: number;
    readonly envelopeIdKey: number;
    /** decodeEnvelope + verifyEnvelope on a 200-byte-payload envelope: the cost of a new message. */
    readonly openEnvelope: number;
  };
  readonly strict: {
    readonly nodeCrypto: { readonly refusesSPlusL: boolean; readonly refusesSmallOrderKey: boolean };
    readonly libsodiumWrappers: { readonly refusesSPlusL: boolean; readonly refusesSmallOrderKey: boolean };
    readonly sodiumNative: { readonly refusesSPlusL: boolean; readonly refusesSmallOrderKey: boolean };
  };
  readonly chosen: "sodiumNative";
}

const SPKI_ED25519_PREFIX = Buffer.from("302a300506032b6570032100", "hex");
const L = (1n << 252n) + 27742317777372353535851937790883648493n;

/** Keeps results alive so the JIT cannot drop the measured calls. */
let sink = 0;

function rate(durationMs: number, op: () => unknown): number {
  for (let i = 0; i < 200; i++) op(); // warm up
  let n = 0;
  const start = performance.now();
  let elapsed = 0;
  while (elapsed < durationMs) {
    for (let i = 0; i < 100; i++) {
      const r = op();
      sink += r === null || r === false ? 0 : 1;
    }
    n += 100;
    elapsed = performance.now() - start;
  }
  if (sink < 0) console.log(sink);
  return Math.round((n * 1000) / elapsed);
}

function addL(sig: Uint8Array): Uint8Array {
  let s = 0n;
  for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(sig[i]!);
  s += L;
  const out = sig.slice();
  for (let i = 32; i < 64; i++) {
    out[i] = Number(s & 0xffn);
    s >>= 8n;
  }
  return out;
}

/** Measure verification rates and strictness; pure CPU, one core. */
export async function measureVerifyRates(opts: VerifyBenchOptions = {}): Promise<VerifyRates> {
  const durationMs = opts.durationMs ?? 1000;
  const messageBytes = opts.messageBytes ?? 200;
  await sodiumWrappers.ready;
  const id = generateIdentity(new Uint8Array(32).fill(42));
  const msg = new Uint8Array(messageBytes).map((_, i) => i & 0xff);
  const sig = sign(id.secretKey, msg);
  const keyObject = createPublicKey({
    key: Buffer.concat([SPKI_ED25519_PREFIX, id.publicKey]),
    format: "der",
    type: "spki",
  });

  const verifiers = {
    nodeCrypto: (s: Uint8Array, m: Uint8Array, pk: Uint8Array, ko = keyObject) => {
      const k =
        pk === id.publicKey
          ? ko
          : createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, pk]), format: "der", type: "spki" });
      return nodeVerify(null, m, k, s);
    },
    libsodiumWrappers: (s: Uint8Array, m: Uint8Array, pk: Uint8Array) =>
      sodiumWrappers.crypto_sign_verify_detached(s, m, pk),
    sodiumNative: (s: Uint8Array, m: Uint8Array, pk: Uint8Array) =>
      sodium.crypto_sign_verify_detached(s, m, pk),
  };
  for (const [name, verify] of Object.entries(verifiers)) {
    if (!verify(sig, msg, id.publicKey)) throw new Error(`${name} failed to verify a valid signature`);
  }

  const identityKey = new Uint8Array(32);
  identityKey[0] = 1;
  const forged = new Uint8Array(64);
  forged[0] = 1;
  const strictness = (verify: (s: Uint8Array, m: Uint8Array, pk: Uint8Array) => boolean) => {
    const refuses = (f: () => boolean) => {
      try {
        return !f();
      } catch {
        return true;
      }
    };
    return {
      refusesSPlusL: refuses(() => verify(addL(sig), msg, id.publicKey)),
      refusesSmallOrderKey: refuses(() => verify(forged, msg, identityKey)),
    };
  };

  const envelope = sealEnvelope(id, MessageType.Broadcast, msg);
  return {
    messageBytes,
    opsPerSec: {
      nodeCrypto: rate(durationMs, () => nodeVerify(null, msg, keyObject, sig)),
      libsodiumWrappers: rate(durationMs, () =>
        sodiumWrappers.crypto_sign_verify_detached(sig, msg, id.publicKey),
      ),
      sodiumNative: rate(durationMs, () => sodium.crypto_sign_verify_detached(sig, msg, id.publicKey)),
      envelopeIdKey: rate(durationMs, () => envelopeIdKey(envelope)),
      openEnvelope: rate(durationMs, () => openEnvelope(envelope)),
    },
    strict: {
      nodeCrypto: strictness(verifiers.nodeCrypto),
      libsodiumWrappers: strictness(verifiers.libsodiumWrappers),
      sodiumNative: strictness(verifiers.sodiumNative),
    },
    chosen: "sodiumNative",
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const durationMs = Number(process.env.BENCH_DURATION_MS ?? 1000);
  console.log(JSON.stringify(await measureVerifyRates({ durationMs }), null, 2));
}
