/**
 * MeshNode's commands and results: an operator's signed Command spreads by gossip like any
 * broadcast, and each node remembers where its first copy came from. Those first arrivals form a
 * tree rooted at the node where the operator waits, and each node's signed Result travels back up
 * it hop by hop instead of being gossiped to everyone (N messages, not N²); a node that never saw
 * the command (it may have restarted) gossips its result instead.
 *
 * The waiting node retries the members that have not answered by sending them the command point to
 * point (`retry`); one that already answered gets its result again (COMMAND_RETRY_AFTER_MS).
 * Counted: `results-routed`, `results-gossiped`, `results-resent`, `commands-retried`,
 * `rejected:expired-command`.
 */
import {
  encodeFrame,
  envelopeIdKey,
  type MessageType,
  messageIdKey,
  type PayloadOf,
} from "../protocol/index.ts";
import type { Accepted, Counters, NodeId } from "../rings/index.ts";
import type { SendRefusal } from "./transport/transport.ts";

/** An operator's command this node accepted (signature, chain and role checked), once per message. */
export interface DeliveredCommand {
  /** The command envelope's message id. */
  readonly id: string;
  /** Hex of the operator key that signed it. */
  readonly sender: string;
  readonly command: PayloadOf<typeof MessageType.Command>;
  /** The envelope exactly as signed, for audit and for answering. */
  readonly envelope: Uint8Array;
}

/** A node's signed result this node accepted, once per message. */
export interface DeliveredResult {
  readonly id: string;
  /** Hex of the node key that signed it. */
  readonly sender: string;
  readonly result: PayloadOf<typeof MessageType.Result>;
  /** The envelope exactly as signed, so a client can verify it itself. */
  readonly envelope: Uint8Array;
}

/** Commands (and results) remembered for routing results back up their tree. */
export const MAX_RECENT_COMMANDS = 4_096;

/**
 * A command heard again this long after its first copy is a retry from the node where the operator
 * waits (gossip's own copies arrive within a round or two): the node answers it with the result it
 * already sent, since the first one was lost on its way up.
 */
export const COMMAND_RETRY_AFTER_MS = 1_000;

/** What the commands need of their MeshNode. */
export interface CommandsHost {
  /** This node's id: the sender of its own results. */
  readonly self: NodeId;
  /** This node's own transport address (what `relay` reports as the sender). */
  readonly address: string;
  readonly counters: Counters;
  /** Send one frame point to point; null when the transport took it. */
  sendFrame(addr: string, frame: Uint8Array): SendRefusal | null;
  /** A member's address, if membership knows it. */
  addrOf(node: NodeId): string | undefined;
  /** Sign our own result. */
  sealResult(result: PayloadOf<typeof MessageType.Result>): Uint8Array;
  /** Gossip a result with `hops` left (the fallback when there is no tree to route it up). */
  gossipResult(id: string, envelope: Uint8Array, hops: number): void;
  /** Hand an accepted command to gossip to forward, unchanged. */
  forward(msg: Accepted, now: number): void;
  /** Hop limit of our own gossip. */
  readonly maxHops: number;
}

/** What a node remembers of a recent command: where it came from, when, and its own answer. */
interface CommandRoute {
  /** The address it first came from; null where it entered the mesh (the tree's root). */
  readonly parent: string | null;
  /** When it was last heard: its first arrival, or the last retry answered. */
  heardMs: number;
  /** This node's signed result, once it has one. */
  answer?: Uint8Array;
}

/** The commands and results of one MeshNode. */
export class MeshNodeCommands {
  readonly #host: CommandsHost;
  /** For each recent command, by message id: where its first copy came from, and our answer. */
  readonly #commands = new Map<string, CommandRoute>();
  /** Results already handled here, so a result that arrives twice goes up the tree once. */
  readonly #resultsSeen = new Set<string>();
  onCommand: ((c: DeliveredCommand) => void) | undefined;
  onResult: ((r: DeliveredResult) => void) | undefined;

  constructor(host: CommandsHost) {
    this.#host = host;
  }

  /** Sign and send this node's result for a command up its tree; returns its message id. */
  publishResult(result: PayloadOf<typeof MessageType.Result>): string {
    const envelope = this.#host.sealResult(result);
    const id = envelopeIdKey(envelope)!;
    remember(this.#resultsSeen, id);
    const commandId = messageIdKey(result.commandId);
    const route = this.#commands.get(commandId);
    if (route !== undefined) route.answer = envelope;
    this.onResult?.({ id, sender: this.#host.self, result, envelope });
    this.#route(id, envelope, commandId, this.#host.maxHops);
    return id;
  }

  /** Send `envelope` (a command) straight to `nodes`; returns how many it was sent to. */
  retry(envelope: Uint8Array, nodes: readonly NodeId[]): number {
    const frame = encodeFrame([{ hops: 0, envelope }]);
    let sent = 0;
    for (const node of nodes) {
      const addr = this.#host.addrOf(node);
      if (addr === undefined || node === this.#host.self) continue;
      if (this.#host.sendFrame(addr, frame) === null) sent++;
    }
    if (sent > 0) this.#host.counters.inc("commands-retried", sent);
    return sent;
  }

  /** True for a result this node already handled (results routed up a tree skip gossip's seen-set). */
  hasSeenResult(id: string): boolean {
    return this.#resultsSeen.has(id);
  }

  /**
   * A message gossip had already seen came again (`id` from `from`): when it is a command retried
   * long after its first copy, and this node has answered it, send the answer to whoever asked again.
   */
  heardAgain(id: string, from: string, now: number): void {
    const route = this.#commands.get(id);
    if (route?.answer === undefined || now - route.heardMs < COMMAND_RETRY_AFTER_MS) return;
    if (from === this.#host.address) return;
    route.heardMs = now;
    if (this.#host.sendFrame(from, encodeFrame([{ hops: 0, envelope: route.answer }])) === null)
      this.#host.counters.inc("results-resent");
  }

  /** An accepted Command: remember where it came from, forward it, and hand it to the subscriber. */
  applyCommand(msg: Accepted, fromAddr: string, now: number): void {
    const command = msg.payload as PayloadOf<typeof MessageType.Command>;
    if (command.expiresMs <= now) {
      this.#host.counters.inc("rejected:expired-command");
      return;
    }
    remember(this.#commands, msg.id, {
      parent: fromAddr === this.#host.address ? null : fromAddr,
      heardMs: now,
    });
    this.#host.forward(msg, now);
    this.onCommand?.({ id: msg.id, sender: msg.sender, command, envelope: msg.envelope.bytes.slice() });
  }

  /** An accepted Result: hand it to the subscriber and send it one hop further up its tree. */
  applyResult(msg: Accepted): void {
    remember(this.#resultsSeen, msg.id);
    const result = msg.payload as PayloadOf<typeof MessageType.Result>;
    const envelope = msg.envelope.bytes.slice();
    this.onResult?.({ id: msg.id, sender: msg.sender, result, envelope });
    this.#route(msg.id, envelope, messageIdKey(result.commandId), this.#host.maxHops);
  }

  /**
   * Send a result one hop up its command's tree; at the root, stop; for a command this node never
   * saw (it may have restarted), fall back to gossip.
   */
  #route(id: string, envelope: Uint8Array, commandId: string, hops: number): void {
    const parent = this.#commands.get(commandId)?.parent;
    if (parent === null) return;
    if (parent !== undefined && this.#host.sendFrame(parent, encodeFrame([{ hops: 0, envelope }])) === null) {
      this.#host.counters.inc("results-routed");
      return;
    }
    this.#host.counters.inc("results-gossiped");
    this.#host.gossipResult(id, envelope, hops);
  }
}

/** Add to a bounded recent-set or map (oldest dropped past MAX_RECENT_COMMANDS). */
function remember<V>(into: Map<string, V> | Set<string>, key: string, value?: V): void {
  if (into instanceof Map) into.set(key, value as V);
  else into.add(key);
  if (into.size > MAX_RECENT_COMMANDS) {
    const oldest = into.keys().next().value;
    if (oldest !== undefined) into.delete(oldest);
  }
}
