/**
 * What one node believes about every member, and the SWIM rules for merging gossip into it:
 * incarnation ordering, suspicion timers with Lifeguard confirmations, refutation of accusations
 * against this node, and `changed` exactly once per transition. Probing lives in `membership.ts`.
 */
import { DeadlineHeap } from "./deadline-heap.ts";
import type { Awareness } from "./membership-awareness.ts";
import type { MemberState, MembershipAction, MembershipConfig, NodeId } from "./membership-types.ts";
import type { Rng } from "./rng.ts";
import { Suspicion, suspicionMinTimeoutMs } from "./suspicion.ts";

/** A member's mutable record. */
export interface MemberRecord {
  id: NodeId;
  addr: string;
  incarnation: number;
  state: MemberState;
  stateChangeMs: number;
}

/** The member table: records, running suspicions, and this node's own record. */
export class MemberTable {
  /** This node's own record; its incarnation is ours. */
  readonly me: MemberRecord;
  private readonly records = new Map<NodeId, MemberRecord>();
  private readonly suspicions = new Map<NodeId, Suspicion>();
  /** Suspicion deadlines, earliest first; an entry holds while it is its suspicion's deadline. */
  private readonly deadlines = new DeadlineHeap<NodeId>();
  private readonly isCurrent = (id: NodeId, atMs: number) => this.suspicions.get(id)?.deadlineMs() === atMs;
  private announced = false;
  /** How many records are `dead` (not `left`): the reconnect timer sleeps while there are none. */
  private deadRecords = 0;

  constructor(
    self: { id: NodeId; addr: string },
    private readonly config: MembershipConfig,
    private readonly awareness: Awareness,
    private readonly rng: Rng,
  ) {
    this.me = { id: self.id, addr: self.addr, incarnation: 0, state: "alive", stateChangeMs: 0 };
    this.records.set(self.id, this.me);
  }

  get(id: NodeId): MemberRecord | undefined {
    return this.records.get(id);
  }

  values(): IterableIterator<MemberRecord> {
    return this.records.values();
  }

  /** Known members, this node and tombstones included: memberlist's size estimate. */
  size(): number {
    return this.records.size;
  }

  /** How many members this node holds dead (not left). */
  deadCount(): number {
    return this.deadRecords;
  }

  /** The earliest suspicion deadline, or Infinity. */
  nextDeadlineMs(): number {
    return this.deadlines.peek(this.isCurrent)?.atMs ?? Number.POSITIVE_INFINITY;
  }

  /** Declares dead every suspect whose suspicion ran out by `nowMs`, and gossips it. */
  expire(nowMs: number, out: MembershipAction[]): void {
    for (;;) {
      const due = this.deadlines.peek(this.isCurrent);
      if (due === undefined || due.atMs > nowMs) return;
      const id = due.key;
      this.deadlines.pop();
      this.suspicions.delete(id);
      const m = this.records.get(id);
      if (m?.state !== "suspect") continue;
      this.transition(m, "dead", nowMs, out);
      out.push({ type: "broadcast", message: { kind: "dead", node: id, incarnation: m.incarnation } });
    }
  }

  /** Forgets dead and left members that died at least `reclaimMs` before `nowMs`. */
  reclaim(reclaimMs: number, nowMs: number): void {
    for (const m of this.records.values())
      if (
        m !== this.me &&
        (m.state === "dead" || m.state === "left") &&
        nowMs - m.stateChangeMs >= reclaimMs
      ) {
        this.records.delete(m.id);
        if (m.state === "dead") this.deadRecords--;
      }
  }

  /**
   * `from` (possibly this node, after a failed probe) suspects `node` at `incarnation`. Returns true
   * when it was news: a new suspicion, or a new independent confirmation of a running one.
   */
  suspect(from: NodeId, node: NodeId, incarnation: number, nowMs: number, out: MembershipAction[]): boolean {
    const m = this.records.get(node);
    if (m === this.me && incarnation < m.incarnation) this.announce(out, false);
    if (!m || incarnation < m.incarnation) return false;
    const running = this.suspicions.get(node);
    if (running) {
      m.incarnation = incarnation;
      if (!running.confirm(from)) return false;
      this.deadlines.push(node, running.deadlineMs()); // confirmations shorten it
      return true;
    }
    if (m.state !== "alive") return false;
    if (m === this.me) {
      this.refute(incarnation, out);
      return false;
    }
    m.incarnation = incarnation;
    this.transition(m, "suspect", nowMs, out);
    // memberlist: expect suspicionMult − 2 confirmations, none if the cluster without us and the
    // suspect is too small to give them.
    const n = this.records.size;
    const k = n - 2 < this.config.suspicionMult - 2 ? 0 : this.config.suspicionMult - 2;
    const minMs = suspicionMinTimeoutMs(this.config.suspicionMult, n, this.config.probeIntervalMs);
    const maxMs = this.config.suspicionMaxTimeoutMult * minMs;
    // Each node's timer runs a little longer by a random amount, so the first node to declare the
    // death is heard by the others before their own timers fire: one `dead` spreads per failure,
    // instead of one per member (a 1,000-node partition would otherwise flood half a million).
    const jitterMs = Math.floor(this.rng() * (this.config.suspicionJitterFraction ?? 0) * minMs);
    const suspicion = new Suspicion(from, k, minMs, maxMs, nowMs + jitterMs);
    this.suspicions.set(node, suspicion);
    this.deadlines.push(node, suspicion.deadlineMs());
    return true;
  }

  /**
   * `node` says it is alive at `incarnation`. Returns "joined" when the node is new or back from
   * dead/left (the prober adds it to the current round), "updated" for a newer incarnation of a
   * member we hold, "stale" when it told us nothing (and for news about ourselves).
   */
  alive(
    node: NodeId,
    incarnation: number,
    addr: string,
    nowMs: number,
    out: MembershipAction[],
  ): "joined" | "updated" | "stale" {
    if (node === this.me.id) {
      // Our own older life, or another process with our key: out-number it.
      const me = this.me;
      const stale = incarnation < me.incarnation || (incarnation === me.incarnation && addr === me.addr);
      if (!stale) this.refute(incarnation, out, false);
      return "stale";
    }
    const m = this.records.get(node);
    if (!m) {
      this.records.set(node, { id: node, addr, incarnation, state: "alive", stateChangeMs: nowMs });
      out.push({ type: "changed", id: node, state: "alive", incarnation });
      return "joined";
    }
    if (incarnation <= m.incarnation) return "stale";
    m.incarnation = incarnation;
    m.addr = addr;
    this.suspicions.delete(node);
    const rejoined = m.state === "dead" || m.state === "left";
    this.transition(m, "alive", nowMs, out);
    return rejoined ? "joined" : "updated";
  }

  /**
   * `from` declares `node` dead at `incarnation`; final for that incarnation. Returns true when it
   * was news (the member was alive or suspect here), false when we knew or it was about us.
   */
  dead(from: NodeId, node: NodeId, incarnation: number, nowMs: number, out: MembershipAction[]): boolean {
    const m = this.records.get(node);
    // An accusation about an incarnation we have moved past: make sure the newer one is out.
    if (m === this.me && incarnation < m.incarnation) this.announce(out, false);
    if (!m || incarnation < m.incarnation || m.state === "dead" || m.state === "left") return false;
    if (m === this.me) {
      this.refute(incarnation, out);
      return false;
    }
    m.incarnation = incarnation;
    this.suspicions.delete(node);
    this.transition(m, from === node ? "left" : "dead", nowMs, out);
    return true;
  }

  /** Our own entry in a seed list that peers already hold: take its incarnation as it is. */
  adoptSelf(incarnation: number): void {
    this.me.incarnation = Math.max(this.me.incarnation, incarnation);
  }

  /** Our own entry in a seed list: start past any incarnation others may hold news about. */
  seedSelf(incarnation: number): boolean {
    if (incarnation < this.me.incarnation) return false;
    this.me.incarnation = incarnation + 1;
    return true;
  }

  /** Gossips that we are alive, once at first or again when asked to (`force`). */
  announce(out: MembershipAction[], force: boolean): void {
    if (this.announced && !force) return;
    this.announced = true;
    const { id, incarnation, addr } = this.me;
    out.push({ type: "broadcast", message: { kind: "alive", node: id, incarnation, addr } });
  }

  /** Graceful leave: gossip our own death (from = us, so others record `left`). */
  leave(nowMs: number, out: MembershipAction[]): void {
    out.push({
      type: "broadcast",
      message: { kind: "dead", node: this.me.id, incarnation: this.me.incarnation },
    });
    this.transition(this.me, "left", nowMs, out);
    this.suspicions.clear();
  }

  /** Beat an accusation at `accused`: take a higher incarnation and say we are alive. */
  private refute(accused: number, out: MembershipAction[], penalize = true): void {
    this.me.incarnation = Math.max(this.me.incarnation, accused) + 1;
    if (penalize) this.awareness.applyDelta(1);
    this.announce(out, true);
  }

  private transition(m: MemberRecord, state: MemberState, nowMs: number, out: MembershipAction[]): void {
    if (m.state === state) return;
    if (m.state === "dead") this.deadRecords--;
    if (state === "dead") this.deadRecords++;
    m.state = state;
    m.stateChangeMs = nowMs;
    out.push({ type: "changed", id: m.id, state, incarnation: m.incarnation });
  }
}
