/**
 * SWIM membership with Lifeguard, as a pure state machine (after hashicorp/memberlist's state.go).
 * `handle(event, nowMs)` returns the actions the runtime must carry out; `nextWakeMs()` says when to
 * deliver the next tick. No I/O, no clock, randomness only from the injected `Rng`. The contract —
 * every event and action — is documented in `membership-types.ts`; the gossip merge rules live in
 * `membership-table.ts`, this file does the probing.
 */
import { Awareness } from "./membership-awareness.ts";
import { retransmitLimit, validateConfig } from "./membership-config.ts";
import { deathToCheck, Hearsay, type HearsaySource } from "./membership-hearsay.ts";
import { type MemberRecord, MemberTable } from "./membership-table.ts";
import type {
  MembershipAction,
  MembershipConfig,
  MembershipEvent,
  MemberView,
  NodeId,
  ProbeMessage,
} from "./membership-types.ts";
import { type Rng, randomInt, shuffle } from "./rng.ts";

/** The probe in flight: a direct ping, then (after the timeout) ping-reqs to helpers. */
interface Probe {
  target: NodeId;
  /** The target's incarnation when the probe started: a failure suspects that one. */
  incarnation: number;
  seq: number;
  timeoutAtMs: number;
  deadlineMs: number;
  /** Undefined until the ping-reqs went out. */
  helpers: NodeId[] | undefined;
  nacks: Set<NodeId>;
}

/** A ping we sent as a helper for someone's ping-req, keyed by our own seq. */
interface Relay {
  requester: NodeId;
  requesterAddr: string;
  requesterSeq: number;
  target: NodeId;
  nackAtMs: number;
}

/** Pass the gossiped message just handled on: it changed this node's view (see MembershipAction). */
const RELAY: MembershipAction = { type: "relay" };

/** Sequence numbers wrap like the wire's uint32. */
const SEQ_MODULUS = 2 ** 32;

/** One node's view of the ring's membership, and its failure detector. */
export class Membership {
  private readonly table: MemberTable;
  private readonly awareness: Awareness;
  private readonly relays = new Map<number, Relay>();
  private readonly hearsay = new Hearsay();
  private probeOrder: NodeId[] = [];
  /** The ids in probeOrder, for O(1) membership checks (a seed adds a thousand members at once). */
  private probeSet = new Set<NodeId>();
  private probeIndex = 0;
  private probe: Probe | undefined;
  /** Undefined until the first event gives us a time. */
  private nextProbeAtMs: number | undefined;
  private nextReconnectAtMs: number | undefined;
  private seq = 0;
  private left = false;

  /** Throws InvalidMembershipConfigError for an unusable config. */
  constructor(
    self: { id: NodeId; addr: string },
    private readonly config: MembershipConfig,
    private readonly rng: Rng,
  ) {
    validateConfig(config);
    this.awareness = new Awareness(config.awarenessMaxMultiplier);
    this.table = new MemberTable(self, config, this.awareness, rng);
  }

  /** Applies one event at time `nowMs` (never decreasing) and returns what to do, in order. */
  handle(event: MembershipEvent, nowMs: number): MembershipAction[] {
    const out: MembershipAction[] = [];
    if (this.left) return out;
    // Stagger the first probe within one interval so that nodes started together do not probe in step.
    this.nextProbeAtMs ??= nowMs + randomInt(this.rng, this.config.probeIntervalMs);
    if (this.config.reconnectIntervalMs !== undefined)
      this.nextReconnectAtMs ??= nowMs + randomInt(this.rng, this.config.reconnectIntervalMs);
    this.advance(nowMs, out);
    switch (event.type) {
      case "tick":
        break;
      case "seed": {
        let bumped = false;
        for (const seed of event.members) {
          if (seed.id === this.table.me.id) {
            if (event.announce ?? true) bumped = this.table.seedSelf(seed.incarnation) || bumped;
            else this.table.adoptSelf(seed.incarnation);
          } else this.onAlive(seed.id, seed.incarnation, seed.addr, nowMs, out);
        }
        if (event.announce ?? true) this.table.announce(out, bumped);
        break;
      }
      case "ping":
        this.onPing(event.from, event.seq, event.target, event.addr, out);
        break;
      case "ping-req":
        this.onPingReq(event.from, event.seq, event.target, event.addr, nowMs, out);
        break;
      case "ack":
        this.onAck(event.from, event.seq, out);
        break;
      case "nack":
        if (this.probe?.seq === event.seq && this.probe.helpers?.includes(event.from))
          this.probe.nacks.add(event.from);
        break;
      case "suspect":
        if (this.table.suspect(event.from, event.node, event.incarnation, nowMs, out)) out.push(RELAY);
        break;
      case "alive":
        if (this.onAlive(event.node, event.incarnation, event.addr, nowMs, out)) out.push(RELAY);
        break;
      case "dead": {
        const source = deathToCheck(event, this.table.get(event.node), this.table.me.id);
        if (source !== undefined) this.onHearsay(event, source, nowMs, out);
        else if (this.table.dead(event.from, event.node, event.incarnation, nowMs, out)) out.push(RELAY);
        break;
      }
      case "leave":
        this.table.leave(nowMs, out);
        this.left = true;
        this.probe = undefined;
        this.relays.clear();
        this.hearsay.clear();
        return out;
    }
    this.advance(nowMs, out);
    return out;
  }

  /**
   * When the runtime must next deliver a tick: 0 before the first event (tick at once), Infinity
   * after leaving. Delivering a tick early or late is safe.
   */
  nextWakeMs(): number {
    if (this.left) return Number.POSITIVE_INFINITY;
    if (this.nextProbeAtMs === undefined) return 0;
    let wake = this.probe ? this.probe.deadlineMs : this.nextProbeAtMs;
    if (this.probe && !this.probe.helpers) wake = Math.min(wake, this.probe.timeoutAtMs);
    for (const relay of this.relays.values()) wake = Math.min(wake, relay.nackAtMs);
    // With nobody dead the reconnect timer has nothing to do: no wake-up for it (advance keeps its
    // grid, so it fires at the same instants once somebody dies).
    if (this.nextReconnectAtMs !== undefined && this.table.deadCount() > 0)
      wake = Math.min(wake, this.nextReconnectAtMs);
    return Math.min(wake, this.table.nextDeadlineMs(), this.hearsay.nextDeadlineMs());
  }

  /** What this node believes about `id` (itself included), or undefined if it does not know it. */
  member(id: NodeId): MemberView | undefined {
    const m = this.table.get(id);
    return m && { ...m };
  }

  /** Every known member, this node and dead/left tombstones included, sorted by id. */
  members(): MemberView[] {
    return [...this.table.values()].map((m) => ({ ...m })).sort((a, b) => (a.id < b.id ? -1 : 1));
  }

  /** Ids of the members worth gossiping to (alive or suspect), not this node. No copies of records. */
  liveIds(): NodeId[] {
    const ids: NodeId[] = [];
    for (const m of this.table.values()) {
      if (m !== this.table.me && (m.state === "alive" || m.state === "suspect")) ids.push(m.id);
    }
    return ids;
  }

  /** How many members are alive (not suspect, dead or left), this node included. */
  aliveCount(): number {
    let count = 0;
    for (const m of this.table.values()) if (m.state === "alive") count++;
    return count;
  }

  /** Lifeguard local health score: 0 is healthy; probe interval and timeout are scaled by score + 1. */
  healthScore(): number {
    return this.awareness.score();
  }

  /** This node's own incarnation number. */
  incarnation(): number {
    return this.table.me.incarnation;
  }

  /** How many times the gossip layer should send each of our broadcasts at the current size. */
  retransmitLimit(): number {
    return retransmitLimit(this.config.retransmitMult, this.table.size());
  }

  /** Fires every timer due by `nowMs`: helper nacks, suspicion expiries, the probe's stages. */
  private advance(nowMs: number, out: MembershipAction[]): void {
    for (const [seq, relay] of this.relays) {
      if (relay.nackAtMs > nowMs) continue;
      this.relays.delete(seq);
      const nack: ProbeMessage = { kind: "nack", seq: relay.requesterSeq, target: relay.target };
      this.send(relay.requester, relay.requesterAddr, nack, out);
    }
    this.table.expire(nowMs, out);
    this.expireHearsay(nowMs, out);
    const probe = this.probe;
    if (probe && !probe.helpers && nowMs >= probe.timeoutAtMs) this.askHelpers(probe, out);
    if (probe && nowMs >= probe.deadlineMs) this.failProbe(probe, nowMs, out);
    if (!this.probe && this.nextProbeAtMs !== undefined && nowMs >= this.nextProbeAtMs)
      this.startProbe(nowMs, out);
    const interval = this.config.reconnectIntervalMs;
    if (interval !== undefined && this.nextReconnectAtMs !== undefined && nowMs >= this.nextReconnectAtMs) {
      // On the timer's own grid: a tick that comes late (it slept while nobody was dead) does not
      // shift the instants it fires at later.
      const missed = Math.floor((nowMs - this.nextReconnectAtMs) / interval);
      this.nextReconnectAtMs += (missed + 1) * interval;
      this.reconnect(out);
    }
  }

  /** Ping one random dead member (not one that left): it may only have been cut off. */
  private reconnect(out: MembershipAction[]): void {
    const dead: MemberRecord[] = [];
    for (const m of this.table.values()) if (m.state === "dead") dead.push(m);
    if (dead.length === 0) return;
    const target = dead[randomInt(this.rng, dead.length)] as MemberRecord;
    const message: ProbeMessage = { kind: "ping", seq: this.nextSeq(), target: target.id };
    out.push({ type: "send", to: target.id, addr: target.addr, message, reconnect: true });
  }

  private startProbe(nowMs: number, out: MembershipAction[]): void {
    const target = this.nextTarget(nowMs);
    this.nextProbeAtMs = nowMs + this.awareness.scale(this.config.probeIntervalMs);
    if (!target) return;
    const seq = this.nextSeq();
    this.probe = {
      target: target.id,
      incarnation: target.incarnation,
      seq,
      timeoutAtMs: nowMs + this.awareness.scale(this.config.probeTimeoutMs),
      deadlineMs: this.nextProbeAtMs,
      helpers: undefined,
      nacks: new Set(),
    };
    this.send(target.id, target.addr, { kind: "ping", seq, target: target.id }, out);
  }

  /** Randomized round-robin: walk a shuffled list, reshuffled at the end of every round. */
  private nextTarget(nowMs: number): MemberRecord | undefined {
    for (let pass = 0; pass < 2; pass++) {
      while (this.probeIndex < this.probeOrder.length) {
        const m = this.table.get(this.probeOrder[this.probeIndex++] as NodeId);
        if (m && this.probeable(m)) return m;
      }
      if (this.config.deadReclaimMs !== undefined) this.table.reclaim(this.config.deadReclaimMs, nowMs);
      const ids = [...this.table.values()].filter((m) => this.probeable(m)).map((m) => m.id);
      this.probeOrder = shuffle(this.rng, ids);
      this.probeSet = new Set(ids);
      this.probeIndex = 0;
    }
    return undefined;
  }

  private probeable(m: MemberRecord): boolean {
    return m !== this.table.me && (m.state === "alive" || m.state === "suspect");
  }

  /** A death to check: ping the member now, believe the death only if no ack comes. */
  private onHearsay(
    event: Extract<MembershipEvent, { type: "dead" }>,
    source: HearsaySource,
    nowMs: number,
    out: MembershipAction[],
  ): void {
    const { from, node, incarnation } = event;
    const m = this.table.get(node);
    const news = m !== undefined && this.probeable(m) && incarnation >= m.incarnation;
    if (!news || this.hearsay.has(node, incarnation)) {
      if (!news) out.push({ type: "hearsay", node, outcome: "stale", source });
      return; // stale, or a check of it is in flight
    }
    const seq = this.nextSeq();
    const deadlineMs = nowMs + this.awareness.scale(this.config.probeTimeoutMs);
    const added = this.hearsay.add(node, { from, incarnation, seq, deadlineMs, source });
    out.push({ type: "hearsay", node, outcome: added ? "pending" : "dropped", source });
    if (added) this.send(node, m.addr, { kind: "ping", seq, target: node }, out);
  }

  /** Applies the notices of hearsay checks whose ping went unanswered. */
  private expireHearsay(nowMs: number, out: MembershipAction[]): void {
    for (const [node, heard] of this.hearsay.expire(nowMs)) {
      if (this.table.dead(heard.from, node, heard.incarnation, nowMs, out))
        out.push({ type: "hearsay", node, outcome: "confirmed", source: heard.source });
    }
  }

  private askHelpers(probe: Probe, out: MembershipAction[]): void {
    const candidates = [...this.table.values()].filter(
      (m) => m !== this.table.me && m.id !== probe.target && m.state === "alive",
    );
    const helpers = shuffle(this.rng, candidates).slice(0, this.config.indirectChecks);
    probe.helpers = helpers.map((helper) => helper.id);
    for (const helper of helpers)
      this.send(helper.id, helper.addr, { kind: "ping-req", seq: probe.seq, target: probe.target }, out);
  }

  /**
   * No ack by the end of the interval. Lifeguard: if helpers were asked, each missing nack suggests
   * our own network is at fault; with no helpers any failure counts against us. Then suspect.
   */
  private failProbe(probe: Probe, nowMs: number, out: MembershipAction[]): void {
    this.probe = undefined;
    const expectedNacks = probe.helpers?.length ?? 0;
    this.awareness.applyDelta(expectedNacks > 0 ? expectedNacks - probe.nacks.size : 1);
    if (this.table.suspect(this.table.me.id, probe.target, probe.incarnation, nowMs, out)) {
      const incarnation = this.table.get(probe.target)?.incarnation ?? probe.incarnation;
      out.push({ type: "broadcast", message: { kind: "suspect", node: probe.target, incarnation } });
    }
  }

  private onAck(from: NodeId, seq: number, out: MembershipAction[]): void {
    const probe = this.probe;
    if (probe?.seq === seq && (from === probe.target || probe.helpers?.includes(from))) {
      this.probe = undefined;
      this.awareness.applyDelta(-1);
      return;
    }
    const checked = this.hearsay.acked(from, seq);
    if (checked !== undefined) {
      out.push({ type: "hearsay", node: from, outcome: "disproved", source: checked.source });
      return;
    }
    const relay = this.relays.get(seq);
    if (relay && from === relay.target) {
      this.relays.delete(seq);
      const ack: ProbeMessage = { kind: "ack", seq: relay.requesterSeq, target: relay.target };
      this.send(relay.requester, relay.requesterAddr, ack, out);
    }
  }

  private onPing(
    from: NodeId,
    seq: number,
    target: NodeId | undefined,
    addr: string | undefined,
    out: MembershipAction[],
  ): void {
    if (target !== undefined && target !== this.table.me.id) return;
    const replyAddr = addr ?? this.table.get(from)?.addr;
    if (replyAddr !== undefined)
      this.send(from, replyAddr, { kind: "ack", seq, target: this.table.me.id }, out);
  }

  /** Helper side of an indirect probe: ping the target with our own seq, relay its ack, else nack. */
  private onPingReq(
    from: NodeId,
    seq: number,
    target: NodeId,
    addr: string | undefined,
    nowMs: number,
    out: MembershipAction[],
  ): void {
    const requesterAddr = addr ?? this.table.get(from)?.addr;
    if (requesterAddr === undefined) return;
    const targetRecord = this.table.get(target);
    if (target === this.table.me.id || !targetRecord) {
      // About us: we are the proof. About a node we have no address for: we cannot help, say so now.
      const kind = target === this.table.me.id ? "ack" : "nack";
      this.send(from, requesterAddr, { kind, seq, target }, out);
      return;
    }
    const localSeq = this.nextSeq();
    const nackAtMs = nowMs + this.config.nackTimeoutMs;
    this.relays.set(localSeq, { requester: from, requesterAddr, requesterSeq: seq, target, nackAtMs });
    this.send(target, targetRecord.addr, { kind: "ping", seq: localSeq, target }, out);
  }

  /** Applies an `alive`; true when it was news (a new member, a newer incarnation, a rejoin). */
  private onAlive(
    node: NodeId,
    incarnation: number,
    addr: string,
    nowMs: number,
    out: MembershipAction[],
  ): boolean {
    const news = this.table.alive(node, incarnation, addr, nowMs, out);
    if (news !== "joined" || this.probeSet.has(node)) return news !== "stale";
    // A member new to this round goes at a random place among those not probed yet: appended, then
    // swapped with a random one of them (O(1), where a splice would move the whole tail).
    const order = this.probeOrder;
    order.push(node);
    this.probeSet.add(node);
    const last = order.length - 1;
    const at = this.probeIndex + randomInt(this.rng, order.length - this.probeIndex);
    order[last] = order[at] as NodeId;
    order[at] = node;
    return true;
  }

  private send(to: NodeId, addr: string, message: ProbeMessage, out: MembershipAction[]): void {
    out.push({ type: "send", to, addr, message });
  }

  private nextSeq(): number {
    this.seq = (this.seq + 1) % SEQ_MODULUS;
    return this.seq;
  }
}
