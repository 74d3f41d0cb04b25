/**
 * One mesh node: the rings/ state machines wired to a transport and a clock.
 *
 * Inbound, every frame goes through `ingest` (dedup before any signature check, then authorize,
 * verify, decode; a frame's items in batches whose signatures are checked back to back) and each
 * accepted envelope is applied: probes to membership, gossip to membership
 * and the gossip layer (which forwards it unchanged — nothing is re-signed on the way), certificates
 * and revocations to the trust store, application broadcasts to the subscriber, commands and results
 * to mesh-node-commands.ts, membership syncs to mesh-node-sync.ts. Outbound, the node signs only
 * what it originates, and piggybacks queued gossip on its probes.
 *
 * The same class runs in the daemon (system clock, ZeroMQ or NATS) and a thousand times in one
 * process in simulations (virtual clock, memory network).
 */
import {
  type Broadcast,
  decodeFrame,
  EnjinError,
  type Envelope,
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
  type BroadcastPriority,
  type BroadcastSubject,
  type CertificateSource,
  Counters,
  defaultGossipConfig,
  defaultSyncConfig,
  Gossip,
  type GossipAction,
  type GossipConfig,
  ingestFrame,
  lanConfig,
  MAX_PENDING_HEARSAY,
  type MemberState,
  Membership,
  type MembershipAction,
  type MembershipConfig,
  type MembershipEvent,
  type MembershipSyncConfig,
  NEWS_WEIGHT,
  type NodeId,
  type ProbeMessage,
  type Rng,
  TrustStore,
} from "../rings/index.ts";
import type { Clock, TimerId } from "./clock.ts";
import { type DeliveredCommand, type DeliveredResult, MeshNodeCommands } from "./mesh-node-commands.ts";
import { MeshNodeSync } from "./mesh-node-sync.ts";
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
  /** Membership sync (see rings/membership-sync.ts); defaults from `defaultSyncConfig()`. */
  readonly sync?: Partial<MembershipSyncConfig>;
  /** How far another node's clock may run ahead of ours (default DEFAULT_MAX_CLOCK_SKEW_MS). */
  readonly maxClockSkewMs?: number;
  /**
   * The signature check (default `verifyEnvelope`). A simulation of many nodes in one process may
   * pass a memo shared by its nodes (`memoizedVerifier`): ed25519's verdict on identical bytes is
   * the same at every node, so only the CPU spent changes, never an outcome.
   */
  readonly verify?: (envelope: Envelope) => boolean;
}

/**
 * How often a node pings one random dead member with its death notice (Serf's reconnect; memberlist's
 * LAN config has no such thing). This is what heals a partition after both sides declared the other
 * dead: the cut-off member refutes and its ack carries its new `alive` back.
 */
export const DEFAULT_RECONNECT_INTERVAL_MS = 1_000;

/** Suspicion timers run up to this fraction of the minimum timeout longer, at random (see rings/). */
export const DEFAULT_SUSPICION_JITTER_FRACTION = 0.1;

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
  /** Members gossip may send to (alive or suspect), kept to know when gossip's peer list changes. */
  readonly #live = new Set<NodeId>();
  #stopped = false;
  #onBroadcast: ((b: DeliveredBroadcast) => void) | undefined;
  #onMember: ((id: NodeId, state: MemberState, incarnation: number) => void) | undefined;
  #onTrust: ((kind: "certificate" | "revocation", envelope: Uint8Array) => void) | undefined;
  /** The death notices we keep (sent along on reconnect, offered in syncs) and the sync itself. */
  readonly #sync: MeshNodeSync;
  /** Commands and their results, routed back up each command's tree (mesh-node-commands.ts). */
  readonly #commands: MeshNodeCommands;
  /** Our own newest signed `alive`, once we have announced or refuted: it rides on our acks. */
  #ownAlive: Uint8Array | undefined;
  /**
   * Gossiped deaths membership holds while it pings the member (unheralded: see rings/), by member:
   * passed on as received if the ping goes unanswered. At most MAX_PENDING_HEARSAY, oldest dropped.
   */
  readonly #heldDeaths = new Map<NodeId, { id: string; envelope: Uint8Array; hops: number; from: NodeId }>();
  /** The member whose gossiped death the last membership event started a check of. */
  #checkStarted: NodeId | undefined;

  constructor(opts: MeshNodeOptions) {
    this.#opts = opts;
    this.id = keyHex(opts.identity.publicKey);
    this.trust = new TrustStore(opts.rootKey, {
      ...(opts.certificates === undefined ? {} : { source: opts.certificates }),
      ...(opts.verify === undefined ? {} : { verify: opts.verify }),
    });
    this.#gossipConfig = {
      ...defaultGossipConfig(),
      batchEagerPush: true,
      eagerPushMembership: false,
      ...opts.gossip,
    };
    this.membership = new Membership(
      { id: this.id, addr: opts.transport.address },
      {
        ...lanConfig(),
        reconnectIntervalMs: DEFAULT_RECONNECT_INTERVAL_MS,
        suspicionJitterFraction: DEFAULT_SUSPICION_JITTER_FRACTION,
        ...opts.membership,
      },
      opts.rng,
    );
    this.gossip = new Gossip(this.id, this.#gossipConfig, opts.rng);
    this.#sync = new MeshNodeSync(this.id, { ...defaultSyncConfig(), ...opts.sync }, opts.rng, {
      membership: this.membership,
      counters: this.counters,
      seal: (type, payload) => this.#seal(type, payload),
      send: (addr, items) => this.#send(addr, items),
      maxFrameBytes: this.#gossipConfig.maxFrameBytes,
      maxFrameItems: this.#gossipConfig.maxFrameItems,
    });
    this.#commands = new MeshNodeCommands({
      self: this.id,
      address: opts.transport.address,
      counters: this.counters,
      maxHops: this.#gossipConfig.maxHops,
      sendFrame: (addr, frame) => opts.transport.send(addr, frame),
      addrOf: (node) => this.membership.member(node)?.addr,
      sealResult: (result) => this.#seal(MessageType.Result, result),
      gossipResult: (id, envelope, hops) => {
        const event = { type: "accepted" as const, id, envelope, hops, from: null, priority: "app" as const };
        this.#gossipActions(this.gossip.handle(event, this.#now()));
        this.#reschedule();
      },
      forward: (msg, now) => this.#forward(msg, "app", now),
    });
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

  /** Called for every operator command this node accepts (once per message); it is also forwarded. */
  onCommand(handler: (c: DeliveredCommand) => void): void {
    this.#commands.onCommand = handler;
  }

  /** Called for every signed result this node accepts (once per message); it is also forwarded. */
  onResult(handler: (r: DeliveredResult) => void): void {
    this.#commands.onResult = handler;
  }

  /**
   * Sign and gossip this node's result for a command; returns its message id. Results travel as
   * gossip so that the node where the operator waits hears them wherever it sits in the mesh.
   */
  publishResult(result: PayloadOf<typeof MessageType.Result>): string {
    if (this.#stopped) throw new PublishRefusedError("the node is stopped");
    return this.#commands.publishResult(result);
  }

  /**
   * Send a command straight to members that have not answered it (the node where the operator waits
   * does this after a while): one that never heard it runs it and answers here; one that did answers
   * again with the result it already sent (COMMAND_RETRY_AFTER_MS). Returns how many were sent to.
   */
  retryCommand(envelope: Uint8Array, nodes: readonly NodeId[]): number {
    return this.#stopped ? 0 : this.#commands.retry(envelope, nodes);
  }

  /**
   * Called after the trust store took in a certificate or a revocation (from gossip or `relay`),
   * with the envelope's exact bytes: the daemon persists them so a restart keeps what it learned.
   */
  onTrust(handler: (kind: "certificate" | "revocation", envelope: Uint8Array) => void): void {
    this.#onTrust = handler;
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

  /**
   * Take in and gossip an envelope someone else signed (an operator's revocation, a certificate
   * minted at join), unchanged and through the same checks as one received. False when refused (the
   * reason is counted).
   */
  relay(envelope: Uint8Array): boolean {
    const accepted = this.#ingestItems(this.#opts.transport.address, [
      { hops: this.#gossipConfig.maxHops + 1, envelope },
    ]);
    return accepted > 0;
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
    this.#ingestItems(from, items);
  }

  /** Ingest and apply each item; returns how many were accepted. */
  #ingestItems(from: string, items: readonly FrameItem[]): number {
    const now = this.#now();
    const ctx = {
      trust: this.trust,
      ring: this.#opts.ring,
      // Results routed up a command's tree are not in gossip's seen-set: check both, so a repeated
      // result is dropped before its signature is checked, like every other duplicate.
      hasSeen: (id: string) => {
        if (!this.gossip.hasSeen(id)) return this.#commands.hasSeenResult(id);
        this.#commands.heardAgain(id, from, now);
        return true;
      },
      counters: this.counters,
      ...(this.#opts.verify === undefined ? {} : { verify: this.#opts.verify }),
    };
    const count = ingestFrame(ctx, items, now, (accepted) => this.#apply(accepted, from, now));
    this.#reschedule();
    return count;
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
        const node = keyHex(p.node);
        const relay = this.#membershipEvent({
          type: "suspect",
          from: sender,
          node,
          incarnation: p.incarnation,
        });
        const subject = { node, incarnation: p.incarnation, weight: NEWS_WEIGHT.suspect };
        this.#forward(msg, "membership", now, { relay, repair: false, subject });
        return;
      }
      case MessageType.Alive: {
        const p = msg.payload as PayloadOf<typeof MessageType.Alive>;
        if (keyHex(p.node) !== sender) {
          this.counters.inc("rejected:alive-not-self");
          return;
        }
        const relay = this.#membershipEvent({
          type: "alive",
          node: sender,
          incarnation: p.incarnation,
          addr: p.addr,
        });
        const subject = { node: sender, incarnation: p.incarnation, weight: NEWS_WEIGHT.alive };
        this.#forward(msg, "membership", now, { relay, repair: true, subject });
        return;
      }
      case MessageType.Dead: {
        const p = msg.payload as PayloadOf<typeof MessageType.Dead>;
        const node = keyHex(p.node);
        this.#sync.noteDeath(node, p.incarnation, envelope.bytes);
        // No hops left: handed over point to point (a sync's answer, a reconnect ping), not spread
        // by gossip, which always sends with hops to spare. Membership pings the member first.
        const hearsay = msg.hops === 0;
        const event = { type: "dead" as const, from: sender, node, incarnation: p.incarnation };
        this.#checkStarted = undefined;
        const relay = this.#membershipEvent(hearsay ? { ...event, hearsay } : event);
        if (this.#checkStarted === node) this.#holdDeath(node, msg);
        if (hearsay && relay && sender === node) this.counters.inc("sync:taught-left");
        const subject = { node, incarnation: p.incarnation, weight: NEWS_WEIGHT.dead };
        this.#forward(msg, "membership", now, { relay, repair: false, subject });
        return;
      }
      case MessageType.MemberDigest:
        this.#sync.onDigest(sender, msg.payload as PayloadOf<typeof MessageType.MemberDigest>, now);
        return;
      case MessageType.MemberWant:
        this.#sync.onWant(sender, msg.payload as PayloadOf<typeof MessageType.MemberWant>, now);
        return;
      case MessageType.Announce:
        if (!this.#applyTrust(() => this.trust.addVerifiedCertificate(envelope, now))) return;
        this.#forward(msg, "trust", now);
        this.#onTrust?.("certificate", envelope.bytes.slice());
        return;
      case MessageType.Revoke:
        if (!this.#applyTrust(() => this.trust.addVerifiedRevocation(envelope, now))) return;
        this.#forward(msg, "trust", now);
        this.#onTrust?.("revocation", envelope.bytes.slice());
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
      case MessageType.Command:
        this.#commands.applyCommand(msg, fromAddr, now);
        return;
      case MessageType.Result:
        this.#commands.applyResult(msg);
        return;
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

  /**
   * Hand an accepted gossip message to the gossip layer, which marks it seen and forwards it. A
   * membership message is relayed only when it was news here, and only `alive` is offered to
   * anti-entropy (see gossip's `repair`).
   */
  #forward(
    msg: Accepted,
    priority: BroadcastPriority,
    now: number,
    opts: { relay: boolean; repair: boolean; subject?: BroadcastSubject } = { relay: true, repair: true },
  ): void {
    const event = {
      type: "accepted" as const,
      id: msg.id,
      // A copy: the received bytes are a view that would pin the whole frame in the history.
      envelope: msg.envelope.bytes.slice(),
      hops: msg.hops,
      from: msg.sender,
      priority,
      ...opts,
    };
    this.#gossipActions(this.gossip.handle(event, now));
  }

  // ---- outbound ------------------------------------------------------------------------------

  /** Feed membership and carry out its actions; true when it asked for the message to be relayed. */
  #membershipEvent(event: MembershipEvent): boolean {
    if (this.#stopped) return false;
    const now = this.#now();
    const relay = this.#membershipActions(this.membership.handle(event, now), now);
    this.#reschedule();
    return relay;
  }

  #membershipActions(actions: MembershipAction[], now: number): boolean {
    let relay = false;
    for (const action of actions) {
      switch (action.type) {
        case "relay":
          relay = true;
          break;
        case "send":
          this.#sendProbe(action.addr, action.message, action.reconnect === true);
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
          if (m.kind === "alive" && m.node === this.id) this.#ownAlive = envelope;
          if (m.kind === "dead") this.#sync.noteDeath(m.node, m.incarnation, envelope);
          const id = envelopeIdKey(envelope)!;
          // Our own suspicions and declarations are not offered to anti-entropy either.
          const repair = m.kind === "alive";
          const subject = { node: m.node, incarnation: m.incarnation, weight: NEWS_WEIGHT[m.kind] };
          this.#gossipActions(
            this.gossip.handle(
              { type: "publish", id, envelope, priority: "membership", repair, subject },
              now,
            ),
          );
          break;
        }
        case "changed": {
          this.#sync.memberChanged(action.id, action.state);
          // However it was learned (gossip, a sync's notice, our own timer), queued news about the
          // member that this supersedes is not retransmitted (see rings/broadcast-queue.ts).
          const weight = NEWS_WEIGHT[action.state];
          this.gossip.handle(
            { type: "supersede", subject: { node: action.id, incarnation: action.incarnation, weight } },
            now,
          );
          // A member declared dead or gone keeps no connection open here (ZeroMQ would retry it
          // every second); a reconnect probe, or the member's return, opens one afresh.
          if ((action.state === "dead" || action.state === "left") && action.id !== this.id) {
            const addr = this.membership.member(action.id)?.addr;
            if (addr !== undefined && addr !== "") this.#opts.transport.forget?.(addr);
          }
          // Gossip's peers are the live members (alive or suspect): only crossing that line counts.
          const live = action.state === "alive" || action.state === "suspect";
          if (action.id !== this.id && live !== this.#live.has(action.id)) {
            if (live) this.#live.add(action.id);
            else this.#live.delete(action.id);
            this.#peersDirty = true;
          }
          this.#onMember?.(action.id, action.state, action.incarnation);
          break;
        }
        case "hearsay":
          if (action.source === "sync") {
            this.counters.inc(`sync:hearsay-${action.outcome}`);
            break;
          }
          this.counters.inc(`membership:unheralded-death-${action.outcome}`);
          if (action.outcome === "pending") this.#checkStarted = action.node;
          else this.#releaseDeath(action.node, action.outcome === "confirmed", now);
          break;
      }
    }
    return relay;
  }

  /** Keep a gossiped death membership is checking, to pass it on if the check confirms it. */
  #holdDeath(node: NodeId, msg: Accepted): void {
    this.#heldDeaths.delete(node);
    this.#heldDeaths.set(node, {
      id: msg.id,
      envelope: msg.envelope.bytes.slice(),
      hops: msg.hops,
      from: msg.sender,
    });
    if (this.#heldDeaths.size > MAX_PENDING_HEARSAY) {
      const oldest = this.#heldDeaths.keys().next();
      if (!oldest.done) this.#heldDeaths.delete(oldest.value);
    }
  }

  /** A check of a held death ended: pass the death on, as received, if the member did not answer. */
  #releaseDeath(node: NodeId, confirmed: boolean, now: number): void {
    const held = this.#heldDeaths.get(node);
    if (held === undefined) return;
    this.#heldDeaths.delete(node);
    if (!confirmed) return;
    const incarnation = this.membership.member(node)?.incarnation ?? 0;
    const subject = { node, incarnation, weight: NEWS_WEIGHT.dead };
    this.#gossipActions(
      this.gossip.handle({ type: "release", ...held, priority: "membership", subject }, now),
    );
  }

  /**
   * Send a probe message with queued gossip piggybacked. A reconnect ping goes after the target's
   * death notice (so the target refutes before it answers); an ack carries our own `alive` with full
   * hops (so a prober that holds us dead learns our newer incarnation and spreads it).
   */
  #sendProbe(addr: string, message: ProbeMessage, reconnect: boolean): void {
    const type = PROBE_TYPES[message.kind];
    const items: FrameItem[] = [];
    const notice = reconnect ? this.#sync.notice(message.target) : undefined;
    if (notice !== undefined) items.push({ hops: 0, envelope: notice });
    const probe = this.#seal(type, { seq: message.seq, target: keyFromHex(message.target) });
    items.push({ hops: 0, envelope: probe });
    if (message.kind === "ack" && this.#ownAlive !== undefined) {
      items.push({ hops: this.#gossipConfig.maxHops, envelope: this.#ownAlive });
    }
    const used = items.reduce(
      (n, i) => n + FRAME_ITEM_OVERHEAD_BYTES + i.envelope.byteLength,
      FRAME_HEADER_BYTES,
    );
    const budget = this.#gossipConfig.maxFrameBytes - used;
    const maxItems = this.#gossipConfig.maxFrameItems - items.length;
    if (budget > 0 && maxItems > 0) items.push(...this.gossip.piggyback(budget, maxItems, this.#now()));
    this.#send(addr, items);
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
    // The end of every unit of work: push what it made new, in one batch (see batchEagerPush).
    this.#gossipActions(this.gossip.handle({ type: "flush" }, this.#now()));
    // Gossip's next work, not its next round: an idle node does not wake for empty rounds.
    const gossipMs = this.gossip.nextWorkMs(this.#now());
    const wakeMs = Math.min(this.membership.nextWakeMs(), gossipMs, this.#sync.nextWakeMs());
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
    // Gossip's peer list follows membership once per tick (at least every gossip interval), not at
    // every change: a partition brings thousands of changes, each an O(members) rebuild.
    if (this.#peersDirty) {
      this.#peersDirty = false;
      this.gossip.handle({ type: "peers", peers: this.membership.liveIds() }, now);
    }
    if (this.membership.nextWakeMs() <= now) {
      this.#membershipActions(this.membership.handle({ type: "tick" }, now), now);
    }
    if (this.gossip.nextWorkMs(now) <= now) this.#gossipActions(this.gossip.handle({ type: "tick" }, now));
    if (this.#sync.nextWakeMs() <= now) this.#sync.tick(now);
    this.#reschedule();
  }
}
