/**
 * The outbound side of the ZeroMQ transport: one CURVE Dealer per destination address, with a
 * bounded queue in front of it, so sending never blocks and never throws. zeromq.js allows one
 * `send` in flight per socket, so each destination has a pump that drains its queue one message
 * at a time; libzmq's own queue (the high-water mark) sits behind it. A full queue drops the frame
 * and counts `dropped-queue-full`. At most `maxPeers` Dealers stay open: opening one more closes
 * the least recently used. Frames still in our queue are dropped (`dropped-evicted`); what libzmq
 * already holds still goes out for EVICTED_LINGER_MS, the Dealer connecting if it was not yet.
 */
import { createRequire } from "node:module";
import type * as Zmq from "zeromq";
import type { Counters } from "../../rings/index.ts";
import { z85Encode } from "./zeromq-keys.ts";

// zeromq is CommonJS: `require` skips node's scan of its source for named exports (protocol/sodium.ts).
const zmq = createRequire(import.meta.url)("zeromq") as typeof Zmq;

/**
 * How long an evicted Dealer keeps trying to deliver what libzmq already holds (ZMQ_LINGER). A frame
 * handed over just before the eviction, perhaps before the handshake was done, would otherwise be
 * lost uncounted (a probe's ack, a command's result). Bounds the sockets closing in the background
 * to the evictions of the last second.
 */
export const EVICTED_LINGER_MS = 1_000;

/** Where a destination is and which CURVE key its server must prove. */
export interface OutboundTarget {
  /** `tcp://HOST:PORT`. */
  readonly endpoint: string;
  /** The server's CURVE public key, 32 bytes. */
  readonly curvePublicKey: Uint8Array;
}

/** What the outbound side needs from its endpoint. */
export interface OutboundOptions {
  /** The endpoint's ZeroMQ context (shared with its server and ZAP handler). */
  readonly context: Zmq.Context;
  /** The endpoint's own address, sent as each Dealer's routing id: the receiver's `from`. */
  readonly routingId: string;
  /** This node's CURVE key pair, Z85. */
  readonly curvePublicKey: string;
  readonly curveSecretKey: string;
  /** Bounds of each destination's queue. */
  readonly maxQueuedFrames: number;
  readonly maxQueuedBytes: number;
  /** Most Dealers open at once. */
  readonly maxPeers: number;
  /** libzmq high-water mark of each Dealer, in messages. */
  readonly highWaterMark: number;
  /** Wait between a Dealer's reconnect attempts, doubling after each failure up to the max. */
  readonly reconnectIntervalMs: number;
  readonly reconnectMaxIntervalMs: number;
  /** The first part of every message (the wire version). */
  readonly header: Buffer;
  /** Where `sent`, `dropped-*` and `refused-by-peer` are counted. */
  readonly counters: Counters;
}

interface Peer {
  readonly curveHex: string;
  readonly dealer: Zmq.Dealer;
  readonly queue: Buffer[];
  queuedBytes: number;
  pumping: boolean;
  closed: boolean;
}

/** The per-destination Dealers of one endpoint. */
export class Outbound {
  readonly #opts: OutboundOptions;
  readonly #peers = new Map<string, Peer>();

  constructor(opts: OutboundOptions) {
    this.#opts = opts;
  }

  /** Whether a Dealer for `to` is open. */
  has(to: string): boolean {
    return this.#peers.has(to);
  }

  /** Open a Dealer for `to`; false if libzmq refuses the socket or the endpoint. */
  open(to: string, target: OutboundTarget): boolean {
    const o = this.#opts;
    if (this.#peers.size >= o.maxPeers) {
      const [lruTo, lru] = this.#peers.entries().next().value as [string, Peer];
      this.#letGo(lruTo, lru, "evicted");
    }
    let dealer: Zmq.Dealer | undefined;
    try {
      dealer = new zmq.Dealer({
        context: o.context,
        linger: 0,
        routingId: o.routingId,
        curveServerKey: z85Encode(target.curvePublicKey),
        curvePublicKey: o.curvePublicKey,
        curveSecretKey: o.curveSecretKey,
        sendHighWaterMark: o.highWaterMark,
        reconnectInterval: o.reconnectIntervalMs,
        reconnectMaxInterval: o.reconnectMaxIntervalMs,
      });
      dealer.connect(target.endpoint);
    } catch {
      dealer?.close();
      return false;
    }
    const curveHex = Buffer.from(target.curvePublicKey).toString("hex");
    const peer: Peer = { curveHex, dealer, queue: [], queuedBytes: 0, pumping: false, closed: false };
    this.#peers.set(to, peer);
    // libzmq does not retry a server that refused us at the handshake: drop this Dealer, so a
    // later send (perhaps once our certificate has reached that server) starts afresh.
    dealer.events.on("handshake:error:auth", () => {
      o.counters.inc("refused-by-peer");
      this.#close(to, peer);
    });
    return true;
  }

  /** Queue a copy of `frame` for the open destination `to` (see `open`); drops it when full. */
  enqueue(to: string, frame: Uint8Array): void {
    const peer = this.#peers.get(to);
    if (peer === undefined) return;
    this.#peers.delete(to); // keep the Map in least-recently-used order
    this.#peers.set(to, peer);
    const o = this.#opts;
    if (peer.queue.length >= o.maxQueuedFrames || peer.queuedBytes + frame.byteLength > o.maxQueuedBytes) {
      o.counters.inc("dropped-queue-full");
      return;
    }
    const copy = Buffer.from(frame); // a copy: the caller may reuse its buffer
    peer.queue.push(copy);
    peer.queuedBytes += copy.length;
    void this.#pump(peer);
  }

  /**
   * Close the Dealer for `to`, if open, once libzmq has sent what it already holds (within
   * EVICTED_LINGER_MS); frames still in our queue are dropped and counted `dropped-forgotten`.
   */
  forget(to: string): void {
    const peer = this.#peers.get(to);
    if (peer !== undefined) this.#letGo(to, peer, "forgotten");
  }

  /**
   * Close a Dealer we chose to drop (not a failed one): what libzmq holds still goes out within
   * EVICTED_LINGER_MS; our queued frames are counted `dropped-<why>`, the Dealer `<why>-peer`.
   */
  #letGo(to: string, peer: Peer, why: "evicted" | "forgotten"): void {
    this.#opts.counters.inc(`dropped-${why}`, peer.queue.length);
    this.#opts.counters.inc(`${why}-peer`);
    peer.dealer.linger = EVICTED_LINGER_MS;
    this.#close(to, peer);
  }

  /** Close every Dealer to a server with this CURVE key (hex), dropping what is queued. */
  closeKey(curveHex: string): void {
    for (const [to, peer] of [...this.#peers]) if (peer.curveHex === curveHex) this.#close(to, peer);
  }

  /** Close every Dealer, dropping what is queued. */
  closeAll(): void {
    for (const [to, peer] of [...this.#peers]) this.#close(to, peer);
  }

  #close(to: string, peer: Peer): void {
    if (peer.closed) return;
    peer.closed = true;
    peer.queue.length = 0;
    peer.queuedBytes = 0;
    peer.dealer.close();
    if (this.#peers.get(to) === peer) this.#peers.delete(to);
  }

  async #pump(peer: Peer): Promise<void> {
    if (peer.pumping) return;
    peer.pumping = true;
    const { counters, header } = this.#opts;
    try {
      while (!peer.closed && peer.queue.length > 0) {
        const frame = peer.queue[0]!;
        try {
          await peer.dealer.send([header, frame]);
          counters.inc("sent");
        } catch {
          if (peer.closed) return;
          counters.inc("dropped-send-error");
        }
        if (peer.closed) return;
        peer.queue.shift();
        peer.queuedBytes -= frame.length;
      }
    } finally {
      peer.pumping = false;
    }
  }
}
