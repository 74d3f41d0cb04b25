/**
 * The transport compliance suite: one set of behaviours every Transport must show, run against each
 * implementation (memory now; ZeroMQ and NATS with real processes and sockets later). It waits with
 * `eventually`, never with fixed sleeps. Where it must show that something did *not* arrive, it
 * sends a later sentinel on the same link and waits for that: on an ordered, loss-free link the
 * sentinel's arrival means anything sent before it has had its chance.
 *
 * The setup must give a loss-free network whose links keep order per sender; `make()` returns a new
 * endpoint each call, and the suite closes every endpoint it made before calling `teardown()`.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { SendRefusal, Transport } from "../../agent/transport/transport.ts";
import { eventually } from "../support/eventually.ts";

/** What a compliance run needs from an implementation. */
export interface TransportHarness {
  /** A new, open endpoint on the shared test network. */
  make(): Promise<Transport>;
  /** Release what setup started (servers, processes); endpoints are already closed. */
  teardown(): Promise<void>;
}

/** Options of a compliance run. */
export interface TransportComplianceOptions {
  /** Wall-clock budget of each wait (default 5,000 ms; raise for slow real networks). */
  readonly timeoutMs?: number;
}

interface Received {
  readonly from: string;
  readonly frame: Uint8Array;
}

const REFUSALS: ReadonlyArray<SendRefusal | null> = ["too-large", "closed", "unknown-address", null];

function bytes(...values: number[]): Uint8Array {
  return Uint8Array.from(values);
}

/** A frame carrying `n` as 4 big-endian bytes, then `pad` bytes of filler. */
function numbered(n: number, pad = 0): Uint8Array {
  const frame = new Uint8Array(4 + pad);
  new DataView(frame.buffer).setUint32(0, n);
  return frame;
}

function numberOf(frame: Uint8Array): number {
  return new DataView(frame.buffer, frame.byteOffset, frame.byteLength).getUint32(0);
}

/** Register the compliance suite for the transport called `name`. */
export function transportCompliance(
  name: string,
  setup: () => Promise<TransportHarness>,
  options: TransportComplianceOptions = {},
): void {
  const wait = { timeoutMs: options.timeoutMs ?? 5_000, intervalMs: 5 };

  describe(`transport compliance: ${name}`, () => {
    let harness: TransportHarness;
    let made: Transport[] = [];

    /** A new endpoint that records what it receives. */
    const endpoint = async (): Promise<{ t: Transport; inbox: Received[] }> => {
      const t = await harness.make();
      made.push(t);
      const inbox: Received[] = [];
      t.onFrame((from, frame) => inbox.push({ from, frame }));
      return { t, inbox };
    };

    beforeEach(async () => {
      harness = await setup();
      made = [];
    });

    afterEach(async () => {
      await Promise.all(made.map((t) => t.close()));
      await harness.teardown();
    });

    it("gives each endpoint its own address", async () => {
      const a = await endpoint();
      const b = await endpoint();
      expect(a.t.address).not.toBe(b.t.address);
      expect(a.t.maxFrameBytes).toBeGreaterThan(0);
    });

    it("delivers a frame byte for byte with the sender's address", async () => {
      const a = await endpoint();
      const b = await endpoint();
      const frame = bytes(0, 1, 2, 127, 128, 254, 255);
      expect(a.t.send(b.t.address, frame)).toBeNull();
      await eventually(() => expect(b.inbox).toHaveLength(1), wait);
      expect(b.inbox[0]!.from).toBe(a.t.address);
      expect(Array.from(b.inbox[0]!.frame)).toEqual([0, 1, 2, 127, 128, 254, 255]);
      expect(a.inbox).toHaveLength(0);
    });

    it("delivers an empty frame", async () => {
      const a = await endpoint();
      const b = await endpoint();
      expect(a.t.send(b.t.address, new Uint8Array(0))).toBeNull();
      await eventually(() => expect(b.inbox).toHaveLength(1), wait);
      expect(b.inbox[0]!.frame.byteLength).toBe(0);
      expect(b.inbox[0]!.from).toBe(a.t.address);
    });

    it("delivers a frame of exactly maxFrameBytes", async () => {
      const a = await endpoint();
      const b = await endpoint();
      const frame = new Uint8Array(a.t.maxFrameBytes);
      for (let i = 0; i < frame.length; i++) frame[i] = (i * 31 + 7) & 0xff;
      expect(a.t.send(b.t.address, frame)).toBeNull();
      await eventually(() => expect(b.inbox).toHaveLength(1), wait);
      expect(b.inbox[0]!.frame).toEqual(frame);
    });

    it("refuses maxFrameBytes + 1 with too-large and delivers nothing of it", async () => {
      const a = await endpoint();
      const b = await endpoint();
      expect(a.t.send(b.t.address, new Uint8Array(a.t.maxFrameBytes + 1))).toBe("too-large");
      expect(a.t.send(b.t.address, bytes(42))).toBeNull(); // sentinel
      await eventually(() => expect(b.inbox.length).toBeGreaterThanOrEqual(1), wait);
      expect(b.inbox.map((r) => Array.from(r.frame))).toEqual([[42]]);
    });

    it("delivers 1,000 frames on one link, in order", async () => {
      const a = await endpoint();
      const b = await endpoint();
      for (let i = 0; i < 1_000; i++) expect(a.t.send(b.t.address, numbered(i, i % 64))).toBeNull();
      await eventually(() => expect(b.inbox).toHaveLength(1_000), wait);
      expect(b.inbox.map((r) => numberOf(r.frame))).toEqual([...Array(1_000).keys()]);
      expect(b.inbox.every((r, i) => r.frame.byteLength === 4 + (i % 64))).toBe(true);
    });

    it("fans in from many senders, each sender's frames in order", async () => {
      const sink = await endpoint();
      const senders = await Promise.all(Array.from({ length: 8 }, () => endpoint()));
      for (let i = 0; i < 50; i++) {
        for (const s of senders) expect(s.t.send(sink.t.address, numbered(i))).toBeNull();
      }
      await eventually(() => expect(sink.inbox).toHaveLength(8 * 50), wait);
      for (const s of senders) {
        const mine = sink.inbox.filter((r) => r.from === s.t.address).map((r) => numberOf(r.frame));
        expect(mine).toEqual([...Array(50).keys()]);
      }
    });

    it("does not throw on a send to an unknown or closed address", async () => {
      const a = await endpoint();
      const gone = await endpoint();
      const goneAddress = gone.t.address;
      await gone.t.close();
      for (const to of ["", "no-such-endpoint-3f9c", goneAddress]) {
        const result = a.t.send(to, bytes(1));
        expect(REFUSALS).toContain(result);
      }
      expect(gone.inbox).toHaveLength(0);
    });

    it("after close(), refuses sends with closed and delivers nothing more to the closed endpoint", async () => {
      const a = await endpoint();
      const b = await endpoint();
      const c = await endpoint();
      expect(a.t.send(b.t.address, bytes(1))).toBeNull();
      await eventually(() => expect(b.inbox).toHaveLength(1), wait);
      await b.t.close();
      expect(b.t.send(a.t.address, bytes(2))).toBe("closed");
      expect(b.t.send(b.t.address, bytes(2))).toBe("closed");
      expect(REFUSALS).toContain(a.t.send(b.t.address, bytes(3)));
      // Barrier: a later frame from the same sender to a live endpoint.
      expect(a.t.send(c.t.address, bytes(4))).toBeNull();
      await eventually(() => expect(c.inbox).toHaveLength(1), wait);
      expect(b.inbox).toHaveLength(1);
      expect(a.inbox).toHaveLength(0);
    });

    it("close() is idempotent, also when called concurrently", async () => {
      const a = await endpoint();
      await Promise.all([a.t.close(), a.t.close()]);
      await a.t.close();
      expect(a.t.send(a.t.address, bytes(1))).toBe("closed");
    });

    it("copies on send: mutating the buffer afterwards does not change what arrives", async () => {
      const a = await endpoint();
      const b = await endpoint();
      const frame = bytes(1, 2, 3, 4);
      expect(a.t.send(b.t.address, frame)).toBeNull();
      frame.fill(0xee);
      const view = new Uint8Array(new ArrayBuffer(16), 4, 4); // a view into a larger buffer
      view.set([9, 8, 7, 6]);
      expect(a.t.send(b.t.address, view)).toBeNull();
      view.fill(0);
      await eventually(() => expect(b.inbox).toHaveLength(2), wait);
      expect(Array.from(b.inbox[0]!.frame)).toEqual([1, 2, 3, 4]);
      expect(Array.from(b.inbox[1]!.frame)).toEqual([9, 8, 7, 6]);
    });
  });
}
