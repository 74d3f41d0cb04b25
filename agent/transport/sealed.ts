/**
 * A transport wrapper that seals every frame with the ring's secret (libsodium's secretbox:
 * XSalsa20-Poly1305, a fresh random nonce per frame), so that a broker or a relay that carries the
 * bytes — a NATS server, a ZeroMQ proxy, anyone on the path — reads nothing of the ring's traffic
 * and cannot alter it unnoticed. Signatures inside still say who said what; this layer says only
 * "a holder of the ring secret sent this".
 *
 *   sealed frame = nonce (24 bytes) || secretbox(frame, nonce, ringSecret)  (frame + 16 bytes)
 *
 * A frame that does not open (wrong key, altered, truncated) is dropped and counted, never passed
 * up. `sealed(inner, secret)` keeps the inner transport's address and halves nothing: its
 * maxFrameBytes is the inner one's less SEAL_OVERHEAD_BYTES.
 */
import { sodium } from "../../protocol/index.ts";
import type { SendRefusal, Transport } from "./transport.ts";

/** Bytes of a ring secret. */
export const RING_SECRET_BYTES = 32;
/** Bytes a sealed frame adds: the nonce and the authenticator. */
export const SEAL_OVERHEAD_BYTES = 24 + 16;

/** The ring secret is not RING_SECRET_BYTES long. */
export class InvalidRingSecretError extends Error {
  override readonly name = "InvalidRingSecretError";
}

/** A new random ring secret. */
export function newRingSecret(): Uint8Array {
  const key = new Uint8Array(RING_SECRET_BYTES);
  sodium.randombytes_buf(key);
  return key;
}

/** A sealing transport and its counters. */
export interface SealedTransport extends Transport {
  /** `opened`, `sealed`, and `dropped-unopenable` (frames that did not authenticate). */
  counters(): Record<string, number>;
}

/** Wrap `inner` so every frame is sealed with `secret` on the way out and opened on the way in. */
export function sealed(inner: Transport, secret: Uint8Array): SealedTransport {
  if (secret.length !== RING_SECRET_BYTES)
    throw new InvalidRingSecretError(`a ring secret is ${RING_SECRET_BYTES} bytes, not ${secret.length}`);
  const key = Uint8Array.from(secret);
  const counts = { sealed: 0, opened: 0, "dropped-unopenable": 0 };
  const nonceBytes = sodium.crypto_secretbox_NONCEBYTES;
  const macBytes = sodium.crypto_secretbox_MACBYTES;
  return {
    address: inner.address,
    maxFrameBytes: inner.maxFrameBytes - SEAL_OVERHEAD_BYTES,
    send(to: string, frame: Uint8Array): SendRefusal | null {
      if (frame.byteLength > inner.maxFrameBytes - SEAL_OVERHEAD_BYTES) return "too-large";
      const out = new Uint8Array(nonceBytes + macBytes + frame.byteLength);
      const nonce = out.subarray(0, nonceBytes);
      sodium.randombytes_buf(nonce);
      sodium.crypto_secretbox_easy(out.subarray(nonceBytes), frame, nonce, key);
      const refused = inner.send(to, out);
      if (refused === null) counts.sealed++;
      return refused;
    },
    onFrame(handler: (from: string, frame: Uint8Array) => void): void {
      inner.onFrame((from, box) => {
        if (box.byteLength < nonceBytes + macBytes) {
          counts["dropped-unopenable"]++;
          return;
        }
        const plain = new Uint8Array(box.byteLength - nonceBytes - macBytes);
        if (
          !sodium.crypto_secretbox_open_easy(
            plain,
            box.subarray(nonceBytes),
            box.subarray(0, nonceBytes),
            key,
          )
        ) {
          counts["dropped-unopenable"]++;
          return;
        }
        counts.opened++;
        handler(from, plain);
      });
    },
    close: () => inner.close(),
    counters: () => ({ ...counts }),
  };
}
