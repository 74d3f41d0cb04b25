/**
 * The contract of the SWIM membership state machine (`membership.ts`): its configuration, the events
 * the runtime delivers and the actions it must carry out. The machine does no I/O and reads no clock;
 * the runtime that wires it to the network is written from this file alone.
 */

/** A node's id: the 64-char lowercase hex of its ed25519 public key. Opaque to membership. */
export type NodeId = string;

/**
 * What this node believes about a member. `left` is a death the member announced itself (a `dead`
 * whose `from` is the member), so it is known to be intentional.
 */
export type MemberState = "alive" | "suspect" | "dead" | "left";

/** Knobs of the protocol. Durations in milliseconds; `lanConfig()` gives memberlist's LAN values. */
export interface MembershipConfig {
  /** Time between probe starts, scaled by the local health multiplier (score + 1). */
  probeIntervalMs: number;
  /** How long a direct ping waits for its ack before asking helpers; scaled like the interval. */
  probeTimeoutMs: number;
  /**
   * How long a helper waits for the target's ack before it sends the requester a nack. It must fit:
   * probeTimeoutMs + nackTimeoutMs + 2 × one-way latency < probeIntervalMs, or nacks arrive after the
   * requester stopped counting and it wrongly blames itself (memberlist waits a full probeTimeout).
   */
  nackTimeoutMs: number;
  /** How many helpers a ping-req goes to when the direct ping gets no ack. */
  indirectChecks: number;
  /** Scales the minimum suspicion timeout: suspicionMult × max(1, log10 n) × probeIntervalMs. */
  suspicionMult: number;
  /** The suspicion timeout starts at this multiple of the minimum and shrinks with confirmations. */
  suspicionMaxTimeoutMult: number;
  /** Lifeguard: the health score ranges over 0 .. awarenessMaxMultiplier − 1. */
  awarenessMaxMultiplier: number;
  /**
   * For the gossip layer: a broadcast is retransmitted retransmitMult × ceil(log10(n + 1)) times
   * (see `retransmitLimit`). The machine itself does not retransmit.
   */
  retransmitMult: number;
  /**
   * When set, dead and left members are forgotten this long after they died (memberlist's
   * GossipToTheDeadTime); an `alive` after that is a fresh join. Unset: tombstones are kept forever,
   * which is what makes a replayed old `alive` harmless.
   */
  deadReclaimMs?: number;
  /**
   * When set, every this often one random dead member (not one that left) is pinged with a
   * `reconnect` send, as Serf reconnects to failed members. The runtime sends the signed death
   * notice along, so a member that was only cut off (a partition) learns it was declared dead and
   * refutes; its ack carries its new `alive`. This is what merges the two sides of a healed
   * partition, after each has declared the other dead and stopped gossiping to it.
   */
  reconnectIntervalMs?: number;
  /**
   * Each node lengthens its suspicion timers by a random part of this fraction of the minimum
   * timeout (default 0). Nodes hear a suspicion within milliseconds of each other, so without it
   * every one of them declares the death itself and a failure costs one `dead` per member; with it
   * the first declaration reaches the others before their timers fire.
   */
  suspicionJitterFraction?: number;
}

/** A member as this node sees it. */
export interface MemberView {
  readonly id: NodeId;
  readonly addr: string;
  readonly incarnation: number;
  readonly state: MemberState;
  /** `nowMs` of the event that moved the member into `state`. */
  readonly stateChangeMs: number;
}

/**
 * What the runtime delivers to `Membership.handle`. Messages come from the network after the runtime
 * checked their signatures; `from` is the signer. Gossip (`suspect`, `alive`, `dead`) reaches the
 * machine once per envelope the gossip layer accepts; forwarding it is the gossip layer's job.
 */
export type MembershipEvent =
  /** Time passed: deliver at `nextWakeMs()` (earlier or later is harmless, just less exact). */
  | { type: "tick" }
  /**
   * The initial member list (from the trust bundle). Members are taken as alive at the given
   * incarnation. If this node is listed, its own incarnation moves past the listed one. The first
   * seed announces this node (a `broadcast` alive).
   */
  | {
      type: "seed";
      members: readonly { id: NodeId; addr: string; incarnation: number }[];
      /**
       * Default true. False skips the `alive` announcement: for a node its peers already list at
       * this incarnation (a restart from saved state, or a simulation that starts converged). A
       * peer that thinks otherwise still gets refuted through the usual suspicion path.
       */
      announce?: boolean;
    }
  /**
   * A direct probe. `addr` is where to answer when `from` is not a member yet (the runtime knows it
   * from the envelope). `target`, when given, is the node the sender meant to ping: if it is not us,
   * the ping is dropped (the address now belongs to someone else).
   */
  | { type: "ping"; from: NodeId; seq: number; target?: NodeId; addr?: string }
  /** `from` asks us to probe `target` on its behalf and to answer with `from`'s `seq`. */
  | { type: "ping-req"; from: NodeId; seq: number; target: NodeId; addr?: string }
  /** An acknowledgement of our ping `seq` (from the target, or relayed by a helper). */
  | { type: "ack"; from: NodeId; seq: number }
  /** Lifeguard: helper `from` reached us fine but the target of our ping-req `seq` did not answer. */
  | { type: "nack"; from: NodeId; seq: number }
  /** Gossip: `from` suspects `node` at `incarnation`. */
  | { type: "suspect"; from: NodeId; node: NodeId; incarnation: number }
  /** Gossip: `node` is alive at `incarnation` and reachable at `addr`. Signed by `node` itself. */
  | { type: "alive"; node: NodeId; incarnation: number; addr: string }
  /**
   * Gossip: `from` declares `node` dead at `incarnation`; `from === node` means it left. `hearsay`:
   * the notice was handed over point to point (a sync answer), not spread by gossip. A leave, or a
   * death of this node, is taken as usual. A death of another member is held while the member is
   * pinged (a `send`, apart from the probe round) — applied if no ack comes within probeTimeoutMs
   * (Lifeguard-scaled), dropped if one does (see membership-hearsay.ts) — when it is hearsay and
   * would be news, or when it is *unheralded*: gossiped about a member this node holds alive, since
   * SWIM declares a death only after gossiping a suspicion at that incarnation. A death of a member
   * held suspect is believed at once.
   */
  | { type: "dead"; from: NodeId; node: NodeId; incarnation: number; hearsay?: true }
  /** Leave gracefully: announce our own death; the machine then ignores every event. */
  | { type: "leave" };

/** A point-to-point probe message. `target` is the node the message is about (see each action). */
export interface ProbeMessage {
  readonly kind: "ping" | "ping-req" | "ack" | "nack";
  readonly seq: number;
  readonly target: NodeId;
}

/** A gossip message this node originates; the runtime signs it and fills in `from` = this node. */
export interface GossipMessage {
  readonly kind: "suspect" | "alive" | "dead";
  readonly node: NodeId;
  readonly incarnation: number;
  /** Only on `alive`. */
  readonly addr?: string;
}

/** What the runtime must do, in order, after `handle` returns. */
export type MembershipAction =
  /**
   * Send one probe message to `to` at `addr`, best effort (UDP-like; losing it is fine).
   * ping: `target` is `to`. ping-req: `target` is the node to probe. ack: `target` is the node whose
   * liveness it proves. nack: `target` is the node that stayed silent.
   */
  | { type: "send"; to: NodeId; addr: string; message: ProbeMessage; reconnect?: true }
  /** Gossip a message of our own to the ring (retransmit it `retransmitLimit()` times). */
  | { type: "broadcast"; message: GossipMessage }
  /** A member (or this node, on leave) moved to `state`. Fires exactly once per transition. */
  | { type: "changed"; id: NodeId; state: MemberState; incarnation: number }
  /**
   * Pass on the gossiped suspect/alive/dead just handled: it was news here (a new suspicion or an
   * independent confirmation, a newer incarnation, a death we did not know). Absent, the message
   * stops here, as memberlist rebroadcasts only what changed its state: otherwise every redundant
   * declaration of one death would flood the whole ring.
   */
  | { type: "relay" }
  /**
   * What became of a death held for a check (see the `dead` event): `pending` (held; the member is
   * pinged), `dropped` (too many checks in flight), `stale` (not news here), `confirmed` (no ack: the
   * notice was applied, and a `changed` precedes this), `disproved` (the member acked). A checked
   * death is never relayed: a confirmed one spreads from the nodes that saw the suspicion.
   */
  | {
      type: "hearsay";
      node: NodeId;
      outcome: "pending" | "dropped" | "stale" | "confirmed" | "disproved";
      /** `sync`: the notice was handed over; `gossip`: gossiped, of a member held alive (unheralded). */
      source: "sync" | "gossip";
    };
