/**
 * MeshNode's membership sync: the signed death and leave notices the node keeps, and the
 * MembershipSync machine (rings/membership-sync.ts) wired to its transport.
 *
 * A node keeps the newest Dead envelope it accepted about each member it holds dead or gone. It sends
 * a dead member's notice along with a reconnect ping (the member refutes if it was only cut off), and
 * offers the notices in syncs: a peer that lacks one gets the envelope exactly as signed, in a frame
 * with 0 hops left, and takes it through the normal checks. Counted: `sync:*` here and in the machine,
 * `sync:hearsay-*` from membership (see MeshNode), `sync:bytes-sent` for every frame a sync sends.
 */
import {
  FRAME_HEADER_BYTES,
  type FrameItem,
  frameSize,
  keyFromHex,
  keyHex,
  MessageType,
  type PayloadOf,
} from "../protocol/index.ts";
import {
  type Counters,
  type MemberState,
  type Membership,
  MembershipSync,
  type MembershipSyncConfig,
  type NodeId,
  packFrames,
  type Rng,
  type SyncAction,
  type SyncEntry,
} from "../rings/index.ts";

/** What the sync needs of its MeshNode. */
export interface SyncHost {
  readonly membership: Membership;
  readonly counters: Counters;
  /** Sign a payload of ours. */
  seal<T extends MessageType>(type: T, payload: PayloadOf<T>): Uint8Array;
  /** Send one frame's items to `addr` (refusals are counted by the host). */
  send(addr: string, items: readonly FrameItem[]): void;
  /** Byte and item budget of one outgoing frame (gossip's). */
  readonly maxFrameBytes: number;
  readonly maxFrameItems: number;
}

/** A signed notice kept about a member. */
interface Notice {
  readonly incarnation: number;
  readonly envelope: Uint8Array;
}

/** The notices of one MeshNode and its side of the membership sync. */
export class MeshNodeSync {
  readonly #self: NodeId;
  readonly #host: SyncHost;
  readonly #machine: MembershipSync;
  /** The newest signed `dead` about each member, dropped when the member is seen alive again. */
  readonly #notices = new Map<NodeId, Notice>();

  constructor(self: NodeId, config: MembershipSyncConfig, rng: Rng, host: SyncHost) {
    this.#self = self;
    this.#host = host;
    this.#machine = new MembershipSync(config, rng, host.counters);
  }

  /** Keep `envelope` (a Dead about `node` at `incarnation`) unless one as new is held already. */
  noteDeath(node: NodeId, incarnation: number, envelope: Uint8Array): void {
    const held = this.#notices.get(node);
    if (node === this.#self || (held !== undefined && held.incarnation >= incarnation)) return;
    this.#notices.set(node, { incarnation, envelope: envelope.slice() });
  }

  /** The signed notice held about `node`, to send along a reconnect ping. */
  notice(node: NodeId): Uint8Array | undefined {
    return this.#notices.get(node)?.envelope;
  }

  /** A member moved to `state`: a member alive (or suspect) again has no notice worth offering. */
  memberChanged(node: NodeId, state: MemberState): void {
    if (state === "alive" || state === "suspect") this.#notices.delete(node);
  }

  /** When the machine wants its next tick. */
  nextWakeMs(): number {
    return this.#machine.nextWakeMs();
  }

  /** The machine's tick: maybe a digest to one random alive member. */
  tick(nowMs: number): void {
    const membership = this.#host.membership;
    const peers = membership.liveIds().filter((id) => membership.member(id)?.state === "alive");
    const event = { type: "tick" as const, peers, clusterSize: peers.length + 1, held: this.#held() };
    this.#carryOut(this.#machine.handle(event, nowMs));
  }

  /** A verified MemberDigest from `sender`. */
  onDigest(sender: NodeId, digest: PayloadOf<typeof MessageType.MemberDigest>, nowMs: number): void {
    const membership = this.#host.membership;
    const event = {
      type: "digest" as const,
      from: sender,
      digest: { ...digest, entries: digest.entries.map(toEntry) },
      held: this.#held(),
      view: (node: NodeId) => membership.member(node),
    };
    this.#carryOut(this.#machine.handle(event, nowMs));
  }

  /** A verified MemberWant from `sender`. */
  onWant(sender: NodeId, want: PayloadOf<typeof MessageType.MemberWant>, nowMs: number): void {
    this.#carryOut(
      this.#machine.handle({ type: "want", from: sender, entries: want.entries.map(toEntry) }, nowMs),
    );
  }

  /** Notices offered in a digest: those about members held dead or left here, sorted by key. */
  #held(): SyncEntry[] {
    const held: SyncEntry[] = [];
    for (const [node, notice] of this.#notices) {
      const m = this.#host.membership.member(node);
      if (m === undefined || (m.state !== "dead" && m.state !== "left")) continue;
      if (notice.incarnation >= m.incarnation) held.push({ node, incarnation: notice.incarnation });
    }
    return held.sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
  }

  #carryOut(actions: SyncAction[]): void {
    for (const action of actions) {
      const addr = this.#host.membership.member(action.to)?.addr;
      if (addr === undefined) {
        this.#host.counters.inc("dropped:no-address");
        continue;
      }
      switch (action.type) {
        case "send-digest": {
          const entries = action.digest.entries.map(fromEntry);
          const envelope = this.#host.seal(MessageType.MemberDigest, { ...action.digest, entries });
          this.#send(addr, [{ hops: 0, envelope }]);
          break;
        }
        case "send-want": {
          const envelope = this.#host.seal(MessageType.MemberWant, {
            entries: action.entries.map(fromEntry),
          });
          this.#send(addr, [{ hops: 0, envelope }]);
          break;
        }
        case "send-notices": {
          // 0 hops left: the receiver takes them as handed over, not to be spread (see MeshNode).
          const items: FrameItem[] = [];
          for (const node of action.nodes) {
            const envelope = this.#notices.get(node)?.envelope;
            if (envelope !== undefined) items.push({ hops: 0, envelope });
          }
          this.#host.counters.inc("sync:notices-sent", items.length);
          const budget = this.#host.maxFrameBytes - FRAME_HEADER_BYTES;
          for (const frame of packFrames(items, budget, this.#host.maxFrameItems)) this.#send(addr, frame);
          break;
        }
      }
    }
  }

  #send(addr: string, items: FrameItem[]): void {
    this.#host.counters.inc("sync:bytes-sent", frameSize(items));
    this.#host.send(addr, items);
  }
}

const toEntry = (e: { node: Uint8Array; incarnation: number }): SyncEntry => ({
  node: keyHex(e.node),
  incarnation: e.incarnation,
});
const fromEntry = (e: SyncEntry) => ({ node: keyFromHex(e.node), incarnation: e.incarnation });
