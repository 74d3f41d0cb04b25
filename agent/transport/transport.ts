/**
 * The transport contract: transports move opaque frames between addresses and nothing else.
 * Signing, sealing, dedup and membership sit above. Every implementation (memory, zeromq, nats)
 * passes the shared compliance suite in test/compliance/transport-compliance.ts.
 */

/** Reasons a transport refuses a frame on send. */
export type SendRefusal = "too-large" | "closed" | "unknown-address";

export interface Transport {
  /** The address at which peers reach this endpoint. */
  readonly address: string;
  /** The largest frame this transport carries; larger sends are refused. */
  readonly maxFrameBytes: number;
  /**
   * Queue one frame for `to`. Fire-and-forget: delivery is best effort (a lossy link may drop it).
   * Returns null when queued, or the reason it was refused locally. Never throws on bad input.
   */
  send(to: string, frame: Uint8Array): SendRefusal | null;
  /**
   * Let go of what is kept open for sending to `to` (a member declared dead or gone), if anything;
   * a later `send` to it opens afresh. Optional: a transport that keeps nothing per peer leaves it out.
   */
  forget?(to: string): void;
  /** Install the single receiver of inbound frames. `from` is the sender's address. */
  onFrame(handler: (from: string, frame: Uint8Array) => void): void;
  /** Stop sending and receiving; idempotent. */
  close(): Promise<void>;
}

/** Shared services handed to every transport factory (one set per node; no globals). */
export interface TransportServices {
  /** The address this node asks for; a transport may assign one and report it in `address`. */
  readonly listen?: string;
}

/** Factories are lowercase functions returning this: `memory(net)`, later `zeromq(opts)`, `nats(opts)`. */
export type TransportFactory = (services: TransportServices) => Promise<Transport>;
