/**
 * The ZeroMQ transport over real sockets on 127.0.0.1: the shared compliance suite, then what only
 * a real mesh shows — ZAP turning away keys that are not members, revocation closing a connected
 * peer, plain (non-CURVE) sockets getting nothing through, and malformed messages being counted.
 * Waits use `eventually`; "nothing arrived" is shown by a later sentinel on the same link, or by
 * the refusal that makes arrival impossible.
 */

import { afterEach, describe, expect, it } from "vitest";
import * as zmq from "zeromq";
import { generateIdentity, type Identity, keyHex } from "../../protocol/index.ts";
import { transportCompliance } from "../../test/compliance/transport-compliance.ts";
import { eventually } from "../../test/support/eventually.ts";
import {
  isRevocable,
  ZEROMQ_WIRE_VERSION,
  type ZeromqOptions,
  type ZeromqTransport,
  zeromq,
} from "./zeromq.ts";
import { formatZeromqAddress, parseZeromqAddress, ZeromqBindError } from "./zeromq-address.ts";
import { curveKeyPairOf, curvePublicKeyOf, z85Encode } from "./zeromq-keys.ts";

const WAIT = { timeoutMs: 10_000, intervalMs: 10 };
const LOCAL = { listen: "tcp://127.0.0.1:0" };

transportCompliance(
  "zeromq",
  async () => ({
    make: () => zeromq({ identity: generateIdentity(), authorize: () => true })(LOCAL),
    teardown: async () => {},
  }),
  { timeoutMs: WAIT.timeoutMs },
);

interface Node {
  readonly id: Identity;
  readonly t: ZeromqTransport;
  readonly inbox: Array<{ from: string; bytes: number[] }>;
}

describe("zeromq transport", () => {
  const open: Array<{ close(): unknown }> = [];
  afterEach(async () => {
    for (const o of open.splice(0)) await o.close();
  });

  const node = async (options: Partial<ZeromqOptions> = {}): Promise<Node> => {
    const id = generateIdentity();
    const t = await zeromq({ identity: id, authorize: () => true, ...options })(LOCAL);
    open.push(t);
    const inbox: Node["inbox"] = [];
    t.onFrame((from, frame) => inbox.push({ from, bytes: Array.from(frame) }));
    return { id, t, inbox };
  };

  it("refuses a listen port already in use with ZeromqBindError saying so and what to do", async () => {
    const a = await node();
    const endpoint = parseZeromqAddress(a.t.address)!.endpoint; // tcp://127.0.0.1:PORT
    const taken = zeromq({ identity: generateIdentity(), authorize: () => true })({ listen: endpoint });
    await expect(taken).rejects.toBeInstanceOf(ZeromqBindError);
    await expect(taken).rejects.toThrow(/already in use.*choose another --listen port/);
  });

  /** A bare Dealer in its own context: CURVE with `curve`'s keys, or plain when it is undefined. */
  const rawDealer = (to: string, routingId: string, curve?: Identity): zmq.Dealer => {
    const target = parseZeromqAddress(to)!;
    const context = new zmq.Context({ blocky: false });
    const options: zmq.SocketOptions<zmq.Dealer> = { context, linger: 0, routingId };
    if (curve !== undefined) {
      const pair = curveKeyPairOf(curve);
      Object.assign(options, {
        curveServerKey: z85Encode(curvePublicKeyOf(target.publicKey)),
        curvePublicKey: z85Encode(pair.publicKey),
        curveSecretKey: z85Encode(pair.secretKey),
      });
    }
    const dealer = new zmq.Dealer(options);
    open.push(dealer);
    dealer.connect(target.endpoint);
    return dealer;
  };

  it("reports a real port and its own key in its address, and revocation is an ability", async () => {
    const a = await node();
    const parsed = parseZeromqAddress(a.t.address);
    expect(parsed?.publicKeyHex).toBe(keyHex(a.id.publicKey));
    expect(parsed?.endpoint).toMatch(/^tcp:\/\/127\.0\.0\.1:[1-9]\d*$/);
    expect(isRevocable(a.t)).toBe(true);
  });

  it("refuses a key that is not a member: nothing from it arrives, the refusal is counted", async () => {
    const member = await node();
    const members = new Set<string>();
    const server = await node({ authorize: (k) => members.has(keyHex(k)) });
    members.add(keyHex(member.id.publicKey));
    const outsider = await node();
    expect(outsider.t.send(server.t.address, Uint8Array.of(66))).toBeNull();
    await eventually(
      () => expect(server.t.counters()["refused-peer-unauthorized"]).toBeGreaterThanOrEqual(1),
      WAIT,
    );
    expect(member.t.send(server.t.address, Uint8Array.of(1))).toBeNull();
    await eventually(() => expect(server.inbox).toHaveLength(1), WAIT);
    // The outsider learns it was refused, and its next send tries afresh and is refused again.
    await eventually(() => expect(outsider.t.counters()["refused-by-peer"]).toBeGreaterThanOrEqual(1), WAIT);
    expect(outsider.t.send(server.t.address, Uint8Array.of(67))).toBeNull();
    await eventually(
      () => expect(server.t.counters()["refused-peer-unauthorized"]).toBeGreaterThanOrEqual(2),
      WAIT,
    );
    expect(server.inbox).toEqual([{ from: member.t.address, bytes: [1] }]);
    expect(server.t.counters()["admitted-peer"]).toBe(1);
  });

  it("does not send to an address whose key is not a member", async () => {
    const other = await node();
    const a = await node({ authorize: (k) => keyHex(k) !== keyHex(other.id.publicKey) });
    expect(a.t.send(other.t.address, Uint8Array.of(1))).toBe("unknown-address");
    expect(a.t.counters()["refused-send-unauthorized-peer"]).toBe(1);
  });

  it("revoke closes a connected peer's connection; its frames stop, other peers keep working", async () => {
    const server = await node();
    const a = await node();
    const b = await node();
    expect(a.t.send(server.t.address, Uint8Array.of(1))).toBeNull();
    expect(b.t.send(server.t.address, Uint8Array.of(2))).toBeNull();
    await eventually(() => expect(server.inbox).toHaveLength(2), WAIT);

    // Revoking a key that never connected closes nothing, so it leaves the server socket alone.
    await server.t.revoke(generateIdentity().publicKey);
    expect(server.t.counters().rebind).toBeUndefined();
    await Promise.all([server.t.revoke(a.id.publicKey), server.t.revoke(a.id.publicKey)]);
    expect(server.t.counters().rebind).toBe(1); // the second call found nothing left to close
    // a reconnects after the rebind and is turned away at the handshake, and learns it.
    await eventually(
      () => expect(server.t.counters()["refused-peer-revoked"]).toBeGreaterThanOrEqual(1),
      WAIT,
    );
    await eventually(() => expect(a.t.counters()["refused-by-peer"]).toBeGreaterThanOrEqual(1), WAIT);
    // Its next frame opens a fresh connection, which is refused too.
    const refusedSoFar = server.t.counters()["refused-peer-revoked"]!;
    expect(a.t.send(server.t.address, Uint8Array.of(3))).toBeNull();
    await eventually(
      () => expect(server.t.counters()["refused-peer-revoked"]).toBeGreaterThan(refusedSoFar),
      WAIT,
    );
    expect(b.t.send(server.t.address, Uint8Array.of(4))).toBeNull();
    await eventually(() => expect(server.inbox).toHaveLength(3), WAIT);
    // Two senders: order across them is not defined, so compare as a sorted list.
    expect(server.inbox.map((r) => [r.from, r.bytes[0]]).sort((x, y) => Number(x[1]) - Number(y[1]))).toEqual(
      [
        [a.t.address, 1],
        [b.t.address, 2],
        [b.t.address, 4],
      ],
    );
    // The revoking side no longer sends to the revoked key either.
    expect(server.t.send(a.t.address, Uint8Array.of(5))).toBe("unknown-address");
  });

  it("lets a plain (non-CURVE) ZeroMQ socket get nothing through", async () => {
    const server = await node();
    const member = await node();
    const plain = rawDealer(server.t.address, member.t.address); // even claiming a member's address
    await plain.send([Buffer.from([ZEROMQ_WIRE_VERSION]), Buffer.from([99])]);
    // libzmq reports the mechanism mismatch as a protocol error, or (if the socket closes first)
    // as a failure without detail; either way the handshake is refused and counted.
    const handshakeRefusals = (): number => {
      const c = server.t.counters();
      return (c["refused-handshake-protocol"] ?? 0) + (c["refused-handshake-other"] ?? 0);
    };
    await eventually(() => expect(handshakeRefusals()).toBeGreaterThanOrEqual(1), WAIT);
    expect(member.t.send(server.t.address, Uint8Array.of(7))).toBeNull();
    await eventually(() => expect(server.inbox).toHaveLength(1), WAIT);
    expect(server.inbox).toEqual([{ from: member.t.address, bytes: [7] }]);
    expect(server.t.counters()["admitted-peer"]).toBe(1);
  });

  it("counts malformed multipart messages from an admitted peer and keeps receiving", async () => {
    const server = await node({ maxFrameBytes: 1024 });
    const id = generateIdentity();
    const from = formatZeromqAddress("127.0.0.1", 1, id.publicKey);
    const dealer = rawDealer(server.t.address, from, id);
    const version = Buffer.from([ZEROMQ_WIRE_VERSION]);
    await dealer.send([Buffer.from([1])]); // no version part
    await dealer.send([version, Buffer.from([1]), Buffer.from([2])]); // one part too many
    await dealer.send([Buffer.from([9]), Buffer.from([1])]); // unknown version
    await dealer.send([Buffer.alloc(0), Buffer.from([1])]); // empty version part
    await dealer.send([version, Buffer.alloc(1025)]); // over maxFrameBytes, under libzmq's cap
    await dealer.send([version, Buffer.from([42])]); // sentinel: well formed
    await eventually(() => expect(server.inbox).toHaveLength(1), WAIT);
    expect(server.inbox[0]).toEqual({ from, bytes: [42] });
    const counts = server.t.counters();
    expect(counts["malformed-parts"]).toBe(2);
    expect(counts["malformed-version"]).toBe(2);
    expect(counts["malformed-too-large"]).toBe(1);

    // A routing id that is not an address is a malformed sender, even from an admitted key.
    const anonymous = rawDealer(server.t.address, "not-an-address", id);
    await anonymous.send([version, Buffer.from([43])]);
    await eventually(() => expect(server.t.counters()["malformed-sender"]).toBe(1), WAIT);
    // A well-formed sender naming a key that never passed ZAP is dropped.
    const stranger = formatZeromqAddress("127.0.0.1", 1, generateIdentity().publicKey);
    const spoof = rawDealer(server.t.address, stranger, id);
    await spoof.send([version, Buffer.from([44])]);
    await eventually(() => expect(server.t.counters()["dropped-unadmitted-sender"]).toBe(1), WAIT);
    expect(server.inbox).toHaveLength(1);
  });

  /** Three receivers, and a sender that keeps at most two connections open. */
  const threeSinksAndTwoPeers = async () => {
    const sinks = [await node(), await node(), await node()] as const;
    return { sinks, a: await node({ maxPeers: 2 }) };
  };

  it("keeps at most maxPeers outbound connections, closing the least recently used", async () => {
    const { sinks, a } = await threeSinksAndTwoPeers();
    const [sink1, sink2, sink3] = sinks;
    expect(a.t.send(sink1.t.address, Uint8Array.of(1))).toBeNull();
    expect(a.t.send(sink2.t.address, Uint8Array.of(2))).toBeNull();
    expect(a.t.send(sink1.t.address, Uint8Array.of(3))).toBeNull(); // sink2 is now least recent
    await eventually(() => expect(sink1.inbox.length + sink2.inbox.length).toBe(3), WAIT);
    expect(a.t.send(sink3.t.address, Uint8Array.of(4))).toBeNull(); // evicts sink2's connection
    expect(a.t.counters()["evicted-peer"]).toBe(1);
    expect(a.t.send(sink1.t.address, Uint8Array.of(5))).toBeNull(); // still open
    await eventually(() => expect(sink3.inbox).toHaveLength(1), WAIT);
    await eventually(() => expect(sink1.inbox.map((r) => r.bytes[0])).toEqual([1, 3, 5]), WAIT);
    expect(a.t.send(sink2.t.address, Uint8Array.of(6))).toBeNull(); // reopened on demand
    await eventually(() => expect(sink2.inbox.map((r) => r.bytes[0])).toEqual([2, 6]), WAIT);
    expect(a.t.counters()["evicted-peer"]).toBe(2);
  });

  it("forget closes a peer's connection: it no longer counts against maxPeers, and a send reopens it", async () => {
    const { sinks, a } = await threeSinksAndTwoPeers();
    const [sink1, sink2, sink3] = sinks;
    expect(a.t.send(sink1.t.address, Uint8Array.of(1))).toBeNull();
    expect(a.t.send(sink2.t.address, Uint8Array.of(2))).toBeNull();
    await eventually(() => expect(sink1.inbox.length + sink2.inbox.length).toBe(2), WAIT);
    a.t.forget?.(sink1.t.address);
    a.t.forget?.("tcp://127.0.0.1:1#nobody"); // nothing open there: nothing happens
    expect(a.t.counters()["forgotten-peer"]).toBe(1);
    expect(a.t.send(sink3.t.address, Uint8Array.of(3))).toBeNull(); // room without evicting sink2
    expect(a.t.counters()["evicted-peer"] ?? 0).toBe(0);
    await eventually(() => expect(sink3.inbox.map((r) => r.bytes[0])).toEqual([3]), WAIT);
    expect(a.t.send(sink1.t.address, Uint8Array.of(4))).toBeNull(); // opened afresh (evicts sink2)
    expect(a.t.counters()["evicted-peer"]).toBe(1);
    await eventually(() => expect(sink1.inbox.map((r) => r.bytes[0])).toEqual([1, 4]), WAIT);
  });

  it("still delivers a frame libzmq held when its connection was evicted before the handshake", async () => {
    // A peer that is down for now: its address is known, nobody listens there yet.
    const later = generateIdentity();
    const first = await zeromq({ identity: later, authorize: () => true })(LOCAL);
    const address = first.address;
    await first.close();
    const a = await node({ maxPeers: 1 });
    expect(a.t.send(address, Uint8Array.of(7))).toBeNull();
    await eventually(() => expect(a.t.counters().sent).toBe(1), WAIT); // handed to libzmq, not connected
    const other = await node();
    expect(a.t.send(other.t.address, Uint8Array.of(8))).toBeNull(); // evicts the unconnected one
    expect(a.t.counters()["evicted-peer"]).toBe(1);
    expect(a.t.counters()["dropped-evicted"]).toBe(0); // nothing was left in our own queue
    // The peer comes up on its address within the linger: the frame was not lost with the socket.
    const back = await zeromq({ identity: later, authorize: () => true })({
      listen: parseZeromqAddress(address)!.endpoint,
    });
    open.push(back);
    const inbox: number[] = [];
    back.onFrame((_from, frame) => inbox.push(...frame));
    await eventually(() => expect(inbox).toEqual([7]), WAIT);
    await eventually(() => expect(other.inbox.map((r) => r.bytes[0])).toEqual([8]), WAIT);
  });

  it("drops and counts frames beyond a full queue, without blocking or throwing", async () => {
    const a = await node({ maxQueuedFrames: 4 });
    const silent = generateIdentity();
    // A member's address with nobody listening: frames pile up in the queue.
    const nowhere = formatZeromqAddress("127.0.0.1", 9, silent.publicKey);
    const results = Array.from({ length: 2_000 }, () => a.t.send(nowhere, Uint8Array.of(1)));
    expect(results.every((r) => r === null)).toBe(true);
    expect(a.t.counters()["dropped-queue-full"]).toBeGreaterThan(0);
  });
});
