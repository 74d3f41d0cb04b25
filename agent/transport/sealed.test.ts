import { describe, expect, it } from "vitest";
import { seededRng } from "../../rings/rng.ts";
import { transportCompliance } from "../../test/compliance/transport-compliance.ts";
import { eventually } from "../../test/support/eventually.ts";
import { systemClock } from "../clock.ts";
import { memoryNetwork } from "./memory.ts";
import { InvalidRingSecretError, newRingSecret, SEAL_OVERHEAD_BYTES, sealed } from "./sealed.ts";

transportCompliance("sealed(memory)", async () => {
  const net = memoryNetwork({ clock: systemClock(), rng: seededRng(2), maxFrameBytes: 64 * 1024 });
  const secret = newRingSecret();
  return { make: async () => sealed(await net.memory()({}), secret), teardown: async () => {} };
});

describe("sealed transport", () => {
  const setup = async () => {
    const net = memoryNetwork({ clock: systemClock(), rng: seededRng(3) });
    return { net, make: () => net.memory()({}) };
  };

  it("carries only ciphertext on the inner transport: a tap sees neither the frame nor its length", async () => {
    const { make } = await setup();
    const secret = newRingSecret();
    const a = sealed(await make(), secret);
    const tap = await make(); // a relay/broker receiving the raw bytes
    const frame = new TextEncoder().encode("ring payload: the ring secret keeps this from the broker");
    const raw: Uint8Array[] = [];
    tap.onFrame((_from, bytes) => raw.push(bytes));
    expect(a.send(tap.address, frame)).toBeNull();
    await eventually(() => expect(raw).toHaveLength(1));
    expect(raw[0]!.byteLength).toBe(frame.byteLength + SEAL_OVERHEAD_BYTES);
    expect(Buffer.from(raw[0]!).includes(Buffer.from("ring payload"))).toBe(false);
    // Two sealings of the same frame differ (fresh nonce each time).
    expect(a.send(tap.address, frame)).toBeNull();
    await eventually(() => expect(raw).toHaveLength(2));
    expect(Buffer.from(raw[0]!).equals(Buffer.from(raw[1]!))).toBe(false);
  });

  it("drops and counts frames sealed with another secret, altered, or too short; passes the rest", async () => {
    const { make } = await setup();
    const secret = newRingSecret();
    const receiver = sealed(await make(), secret);
    const got: string[] = [];
    receiver.onFrame((_from, f) => got.push(new TextDecoder().decode(f)));
    const stranger = sealed(await make(), newRingSecret());
    const raw = await make();
    const honest = sealed(await make(), secret);
    expect(stranger.send(receiver.address, new TextEncoder().encode("wrong key"))).toBeNull();
    expect(raw.send(receiver.address, new Uint8Array(10))).toBeNull();
    expect(raw.send(receiver.address, new Uint8Array(100).fill(7))).toBeNull();
    expect(honest.send(receiver.address, new TextEncoder().encode("ok"))).toBeNull();
    await eventually(() => expect(got).toEqual(["ok"]));
    await eventually(() => expect(receiver.counters()["dropped-unopenable"]).toBe(3));
    expect(receiver.counters().opened).toBe(1);
  });

  it("refuses a secret of the wrong length", async () => {
    const { make } = await setup();
    const inner = await make();
    expect(() => sealed(inner, new Uint8Array(16))).toThrow(InvalidRingSecretError);
  });
});
