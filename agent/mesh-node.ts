/**
 * One mesh node: the rings/ state machines wired to a transport and a clock.
 *
 * Inbound, every frame goes through `ingest` (dedup before any signature check, then authorize,
 * verify, decode) and each accepted envelope is applied: probes to membership, gossip to membership
 * and the gossip layer (which forwards it unchanged — nothing is re-signed on the way), certificates
 * and revocations to the trust store, application broadcasts to the subscriber. Outbound, the node
 * signs only what it originates, and piggybacks queued gossip on its probes.
 *
 * The same class runs in the daemon (system clock, ZeroMQ or NATS) and a thousand times in one
 * process in simulations (virtual clock, memory network).
 */
import {
  type Broadcast,
  decodeFrame,
  EnjinError,
  encodeFrame,
  encodePayload,
  envelopeIdKey,
  FRAME_HEADER_BYTES,
  FRAME_ITEM_OVERHEAD_BYTES,
  type FrameItem,
  type Identity,
  keyFromHex,
  keyHex,
  MessageType,
  messageIdFromKey,
  messageIdKey,
  type PayloadOf,
  type Ring,
  sealEnvelope,
} from "../protocol/index.ts";
import {
  type Accepted,
  type CertificateSource,
  Counters,
  defaultGossipConfig,
  Gossip,
  type GossipAction,
  type GossipConfig,
  ingest,
  lanConfig,
  type MemberState,
  Membership,
  type MembershipAction,
  type MembershipConfig,
  type MembershipEvent,
  type NodeId,
  type ProbeMessage,
  type Rng,
  TrustStore,
} from "../rings/index.ts";
import type { Clock, TimerId } from "./clock.ts";
import type { Transport } from "./transport/transport.ts";

/** Everything a node is made of. */
export interface MeshNodeOptions {
  readonly identity: Identity;
  readonly ring: Ring;
  readonly rootKey: Uint8Array;
  /** Unverified certificates (the trust bundle), checked on first use. */
  readonly certificates?: CertificateSource;
  readonly transport: Transport;
  readonly clock: Clock;
  readonly rng: Rng;
  readonly membership?: Partial<MembershipConfig>;
  readonly gossip?: Partial<GossipConfig>;
  /** How far another node's clock may run ahead of ours (default DEFAULT_MAX_CLOCK_SKEW_MS). */
  readonly maxClockSkewMs?: number;
}

/** Default tolerance for clocks of other nodes running ahead of ours. */
export const DEFAULT_MAX_CLOCK_SKEW_MS = 30_000;

/** An application broadcast delivered to the subscriber. */
export interface DeliveredBroadcast {
  readonly id: string;
  readonly sender: string;
  readonly topic: string;
  readonly data: Uint8Array;
}

/** The largest application payload `publish` accepts (it must fit one gossip frame). */
export const MAX_PUBLISH_BYTES = 1_024;

/** A `publish` the node refuses (too large for a frame, or the node is stopped). */
export class PublishRefusedError extends EnjinError {
  override readonly reason = "publish-refused";
}

const PROBE_TYPES = {
  ping: MessageType.Ping,
  "ping-req": MessageType.PingReq,
  ack: MessageType.Ack,
  nack: MessageType.Nack,
} as const;

export class MeshNode {
  /** Hex of this node's key: its NodeId. */
  readonly id: NodeId;
  readonly counters = new Counters();
  readonly trust: TrustStore;
  readonly membership: Membership;
  readonly gossip: Gossip;
  readonly #opts: MeshNodeOptions;
  readonly #gossipConfig: GossipConfig;
  #timer: TimerId | undefined;
  #timerAtMs = Number.POSITIVE_INFINITY;
  #peersDirty = false;
  #stopped = false;
  #onBroadcast: ((b: DeliveredBroadcast) => void) | undefined;
  #onMember: ((id: NodeId, state: MemberState, incarnation: number) => void) | undefined;

  constructor(opts: MeshNodeOptions) {
    this.#opts = opts;
    this.id = keyHex(opts.identity.publicKey);
    const sourceOption = opts.certificates === undefined ? {} : { source: opts.certificates };
    this.trust = new TrustStore(opts.rootKey, sourceOption);
    this.#gossipConfig = { ...defaultGossipConfig(), ...opts.gossip };
    this.membership = new Membership(
      { id: this.id, addr: opts.transport.address },
      { ...lanConfig(), ...opts.membership },
      opts.rng,
    );
    this.gossip = new Gossip(this.id, this.#gossipConfig, opts.rng);
    opts.transport.onFrame((from, frame) => this.#onFrame(from, frame));
  }

  /**
   * Join with an initial member list (from the trust bundle) and start the timers. `announce: false`
   * skips gossiping our own `alive`, for a node whose peers already list it (a restart, or a
   * simulation that starts converged).
   */
  start(
    members: readonly { id: NodeId; addr: string; incarnation: number }[],
    options: { announce?: boolean } = {},
  ): void {
    this.#membershipEvent({ type: "seed", members, announce: options.announce ?? true });
  }

  /** Called for every application broadcast this node accepts (once per message). */
  onBroadcast(handler: (b: DeliveredBroadcast) => void): void {
    this.#onBroadcast = handler;
  }

  /** Called on every membership transition this node observes. */
  onMemberChange(handler: (id: NodeId, state: MemberState, incarnation: number) => void): void {
    this.#onMember = handler;
  }

  /** Sign and gossip an application broadcast; returns its message id. */
  publish(topic: string, data: Uint8Array): string {
    if (this.#stopped) throw new PublishRefusedError("the node is stopped");
    if (data.byteLength > MAX_PUBLISH_BYTES) {
      throw new PublishRefusedError(`payload of ${data.byteLength} bytes exceeds ${MAX_PUBLISH_BYTES}`);
    }
    const envelope = this.#seal(MessageType.Broadcast, { topic, data, sentAtMs: this.#now() });
    const id = envelopeIdKey(envelope)!;
    this.#gossipActions(this.gossip.handle({ type: "publish", id, envelope, priority: "app" }, this.#now()));
    this.#reschedule();
    return id;
  }

  /** Publish an envelope someone else signed (a certificate or revocation), unchanged. */
  relay(envelope: Uint8Array): void {
    const id = envelopeIdKey(envelope);
    if (id === null || this.gossip.hasSeen(id)) return;
    this.#gossipActions(
      this.gossip.handle({ type: "publish", id, envelope, priority: "membership" }, this.#now()),
    );
    this.#reschedule();
  }

  /** Leave gracefully: tell the ring, give the message a moment to spread, then stop. */
  leave(): void {
    this.#membershipEvent({ type: "leave" });
  }

  /** Stop timers and close the transport. Idempotent. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) this.#opts.clock.clearTimer(this.#timer);
    this.#timer = undefined;
    await this.#opts.transport.close();
  }

  #now(): number {
    return this.#opts.clock.now();
  }

  #seal<T extends MessageType>(type: T, payload: PayloadOf<T>): Uint8Array {
    return sealEnvelope(this.#opts.identity, type, encodePayload(type, payload));
  }

  // ---- inbound -------------------------------------------------------------------------------

  #onFrame(from: string, frame: Uint8Array): void {
    if (this.#stopped) return;
    let items: FrameItem[];
    try {
      items = decodeFrame(frame);
    } catch (err) {
      if (!(err instanceof EnjinError)) throw err;
      this.counters.inc(`rejected:frame-${err.reason}`);
      return;
    }
    const now = this.#now();
    const ctx = {
      trust: this.trust,
      ring: this.#opts.ring,
      hasSeen: (id: string) => this.gossip.hasSeen(id),
      counters: this.counters,
    };
    for (const item of items) {
      const accepted = ingest(ctx, item.envelope, item.hops, now);
      if (accepted !== null) this.#apply(accepted, from, now);
    }
    this.#reschedule();
  }

  #apply(msg: Accepted, fromAddr: string, now: number): void {
    const { envelope, sender } = msg;
    switch (envelope.type) {
      case MessageType.Ping:
      case MessageType.PingReq:
      case MessageType.Ack:
      case MessageType.Nack:
        this.#applyProbe(msg, fromAddr);
        return;
      case MessageType.Suspect: {
        const p = msg.payload as PayloadOf<typeof MessageType.Suspect>;
        this.#membershipEvent({
          type: "suspect",
          from: sender,
          node: keyHex(p.node),
          incarnation: p.incarnation,
        });
        this.#forward(msg, "membership", now);
        return;
      }
      case MessageType.Alive: {
        const p = msg.payload as PayloadOf<typeof MessageType.Alive>;
        if (keyHex(p.node) !== sender) {
          this.counters.inc("rejected:alive-not-self");
          return;
        }
        this.#membershipEvent({ type: "alive", node: sender, incarnation: p.incarnation, addr: p.addr });
        this.#forward(msg, "membership", now);
        return;
      }
      case MessageType.Dead: {
        const p = msg.payload as PayloadOf<typeof MessageType.Dead>;
        this.#membershipEvent({
          type: "dead",
          from: sender,
          node: keyHex(p.node),
          incarnation: p.incarnation,
        });
        this.#forward(msg, "membership", now);
        return;
      }
      case MessageType.Announce:
        if (!this.#applyTrust(() => this.trust.addVerifiedCertificate(envelope, now))) return;
        this.#forward(msg, "membership", now);
        return;
      case MessageType.Revoke:
        if (!this.#applyTrust(() => this.trust.addVerifiedRevocation(envelope, now))) return;
        this.#forward(msg, "membership", now);
        return;
      case MessageType.Broadcast: {
        const p = msg.payload as Broadcast;
        // Accept only what the seen-set will still remember: an older copy is a replay.
        const skewMs = this.#opts.maxClockSkewMs ?? DEFAULT_MAX_CLOCK_SKEW_MS;
        if (p.sentAtMs > now + skewMs) {
          this.counters.inc("rejected:future-broadcast");
          return;
        }
        if (now - p.sentAtMs > this.#gossipConfig.seenTtlMs - skewMs) {
          this.counters.inc("rejected:stale-broadcast");
          return;
        }
        this.#forward(msg, "app", now);
        this.#onBroadcast?.({ id: msg.id, sender, topic: p.topic, data: p.data });
        return;
      }
      case MessageType.Digest:
      case MessageType.Want: {
        const p = msg.payload as PayloadOf<typeof MessageType.Digest>;
        const ids = p.ids.map(messageIdKey);
        const type = envelope.type === MessageType.Digest ? "digest" : "want";
        this.#gossipActions(this.gossip.handle({ type, from: sender, ids }, now));
        return;
      }
      default:
        this.counters.inc(`ignored:type-${envelope.type}`);
    }
  }

  #applyProbe(msg: Accepted, fromAddr: string): void {
    const p = msg.payload as PayloadOf<typeof MessageType.Ping>;
    const target = keyHex(p.target);
    const from = msg.sender;
    const event: MembershipEvent =
      msg.envelope.type === MessageType.Ping
        ? { type: "ping", from, seq: p.seq, target, addr: fromAddr }
        : msg.envelope.type === MessageType.PingReq
          ? { type: "ping-req", from, seq: p.seq, target, addr: fromAddr }
          : msg.envelope.type === MessageType.Ack
            ? { type: "ack", from, seq: p.seq }
            : { type: "nack", from, seq: p.seq };
    this.#membershipEvent(event);
  }

  #applyTrust(change: () => unknown): boolean {
    try {
      change();
      return true;
    } catch (err) {
      if (!(err instanceof EnjinError)) throw err;
      this.counters.inc(`rejected:${err.reason}`);
      return false;
    }
  }

  /** Hand an accepted gossip message to the gossip layer, which marks it seen and forwards it. */
  #forward(msg: Accepted, priority: "membership" | "app", now: number): void {
    const event = {
      type: "accepted" as const,
      id: msg.id,
      // A copy: the received bytes are a view that would pin the whole frame in the history.
      envelope: msg.envelope.bytes.slice(),
      hops: msg.hops,
      from: msg.sender,
      priority,
    };
    this.#gossipActions(this.gossip.handle(event, now));
  }

  // ---- outbound ------------------------------------------------------------------------------

  #membershipEvent(event: MembershipEvent): void {
    if (this.#stopped) return;
    const now = this.#now();
    this.#membershipActions(this.membership.handle(event, now), now);
    this.#reschedule();
  }

  #membershipActions(actions: MembershipAction[], now: number): void {
    for (const action of actions) {
      switch (action.type) {
        case "send":
          this.#sendProbe(action.addr, action.message);
          break;
        case "broadcast": {
          const m = action.message;
          const node = keyFromHex(m.node);
          const envelope =
            m.kind === "alive"
              ? this.#seal(MessageType.Alive, { node, incarnation: m.incarnation, addr: m.addr ?? "" })
              : m.kind === "suspect"
                ? this.#seal(MessageType.Suspect, { node, incarnation: m.incarnation })
                : this.#seal(MessageType.Dead, { node, incarnation: m.incarnation });
          const id = envelopeIdKey(envelope)!;
          this.#gossipActions(
            this.gossip.handle({ type: "publish", id, envelope, priority: "membership" }, now),
          );
          break;
        }
        case "changed":
          this.#peersDirty = true;
          this.#onMember?.(action.id, action.state, action.incarnation);
          break;
      }
    }
  }

  #sendProbe(addr: string, message: ProbeMessage): void {
    const type = PROBE_TYPES[message.kind];
    const envelope = this.#seal(type, { seq: message.seq, target: keyFromHex(message.target) });
    const budget =
      this.#gossipConfig.maxFrameBytes - FRAME_HEADER_BYTES - FRAME_ITEM_OVERHEAD_BYTES - envelope.byteLength;
    const piggyback =
      budget > 0 ? this.gossip.piggyback(budget, this.#gossipConfig.maxFrameItems - 1, this.#now()) : [];
    this.#send(addr, [{ hops: 0, envelope }, ...piggyback]);
  }

  #gossipActions(actions: GossipAction[]): void {
    for (const action of actions) {
      const addr = this.membership.member(action.to)?.addr;
      if (addr === undefined) {
        this.counters.inc("dropped:no-address");
        continue;
      }
      if (action.type === "send") {
        this.#send(addr, action.items);
      } else {
        const type = action.type === "send-digest" ? MessageType.Digest : MessageType.Want;
        const envelope = this.#seal(type, { ids: action.ids.map(messageIdFromKey) });
        this.#send(addr, [{ hops: 0, envelope }]);
      }
    }
  }

  #send(addr: string, items: readonly FrameItem[]): void {
    const refusal = this.#opts.transport.send(addr, encodeFrame(items));
    if (refusal !== null) this.counters.inc(`send-refused:${refusal}`);
  }

  // ---- timers --------------------------------------------------------------------------------

  #reschedule(): void {
    if (this.#stopped) return;
    if (this.#peersDirty) {
      this.#peersDirty = false;
      const peers = this.membership
        .members()
        .filter((m) => m.state === "alive" || m.state === "suspect")
        .map((m) => m.id);
      this.gossip.handle({ type: "peers", peers }, this.#now());
    }
    const wakeMs = Math.min(this.membership.nextWakeMs(), this.gossip.nextWakeMs());
    if (wakeMs === this.#timerAtMs && this.#timer !== undefined) return;
    if (this.#timer !== undefined) this.#opts.clock.clearTimer(this.#timer);
    this.#timerAtMs = wakeMs;
    const delayMs = Math.max(0, wakeMs - this.#now());
    this.#timer = this.#opts.clock.setTimer(delayMs, () => this.#tick());
  }

  #tick(): void {
    this.#timer = undefined;
    this.#timerAtMs = Number.POSITIVE_INFINITY;
    if (this.#stopped) return;
    const now = this.#now();
    if (this.membership.nextWakeMs() <= now) {
      this.#membershipActions(this.membership.handle({ type: "tick" }, now), now);
    }
    if (this.gossip.nextWakeMs() <= now) this.#gossipActions(this.gossip.handle({ type: "tick" }, now));
    this.#reschedule();
  }
}
