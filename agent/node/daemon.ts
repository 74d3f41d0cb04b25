import { join as joinPath } from "node:path";
import type { Logger } from "pino";
import type { TokenIssuer } from "../../bootstrap/index.ts";
import {
  type Certificate,
  type Command,
  decodeCertificate,
  decodeEnvelope,
  decodeRevocation,
  fingerprint,
  keyHex,
  messageIdFromKey,
  messageIdKey,
  type Ring,
} from "../../protocol/index.ts";
import { Counters, isMemberOf, type NodeId, seededRng } from "../../rings/index.ts";
import { systemClock } from "../clock.ts";
import type { DaemonConfig } from "../daemon/config-fields.ts";
import { type ControlServer, serveControl } from "../daemon/control-socket.ts";
import { MeshNode } from "../mesh-node.ts";
import { type DeliveredResult, MAX_RECENT_COMMANDS } from "../mesh-node-commands.ts";
import { readKeyFile } from "../store/key-file.ts";
import type { NodeStore } from "../store/store.ts";
import type { ChildGiveUpEvent, Supervisor } from "../supervise/index.ts";
import { sealed } from "../transport/sealed.ts";
import type { ZeromqTransport } from "../transport/zeromq.ts";
import { admitJoiner } from "./admit.ts";
import { type ChildEvents, wireChildEvents } from "./child-events.ts";
import type { ChildNetwork } from "./child-network.ts";
import { retrySilent } from "./command-retry.ts";
import { runCommand, selectorMatches } from "./commands.ts";
import { controlHandlers } from "./control-api.ts";
import { openDaemonSupervisor } from "./daemon-children.ts";
import {
  DAEMON_GOSSIP_FRAME_BYTES,
  listenParts,
  openJoinEndpoint,
  openPeerTransport,
} from "./daemon-open.ts";
import { type MeshIdentity, MeshState, NotInitializedError, type SelfStanding } from "./mesh-state.ts";
import type { DaemonTransport, NatsLink } from "./nats-link.ts";
import { ROOT_KEY_FILE } from "./seed.ts";
import { selfHostHandlers } from "./self-host-api.ts";

/** How often learned members are written back to the store. */
export const MEMBER_SAVE_INTERVAL_MS = 5_000;
/** A membership change is written this soon after it (changes in between go in the same write). */
export const MEMBER_SAVE_DEBOUNCE_MS = 200;

/** A running daemon's public facts (the control API's `status`). */
export interface DaemonInfo {
  readonly meshId: string;
  readonly nodeKey: string;
  readonly fingerprint: string;
  readonly ring: Ring;
  readonly name: string;
  readonly address: string;
  readonly joinAddress: string | null;
  readonly controlSocket: string;
  readonly startedMs: number;
}

/** The daemon: build with `Daemon.start`, end with `stop`. */
export class Daemon {
  readonly counters = new Counters();
  readonly clock = systemClock();
  #stopped = false;
  #memberTimer: ReturnType<typeof setInterval> | undefined;
  #memberSaveSoon: ReturnType<typeof setTimeout> | undefined;
  #control: ControlServer | undefined;
  #join: ZeromqTransport | undefined;
  /** The mesh's root key, on the seed that holds `root.key`: it alone certifies ring-0 joiners. */
  root: import("../../protocol/index.ts").Identity | undefined;
  #nats: NatsLink | undefined;
  #supervisor: Supervisor | undefined;
  #childEvents: ChildEvents | undefined;
  /** The network of the nodes this one certifies (an issuer of ring ≥ 1), else undefined. */
  childNetwork: ChildNetwork | undefined;
  /** Commands carried down into the children's network: the children not heard from yet. */
  readonly #carriedDown = new Map<string, Set<string>>();
  readonly #resultListeners = new Set<(r: DeliveredResult) => void>();

  private constructor(
    readonly config: DaemonConfig,
    readonly log: Logger,
    readonly store: NodeStore,
    readonly state: MeshState,
    readonly mesh: MeshIdentity,
    readonly self: SelfStanding,
    readonly selfCert: Certificate,
    readonly node: MeshNode,
    readonly transport: DaemonTransport,
    readonly certificates: Map<string, Uint8Array>,
    readonly tokens: TokenIssuer | undefined,
    readonly info: DaemonInfo,
    readonly identity: import("../../protocol/index.ts").Identity,
    /** The secret sealing every frame of this node's network (handed, sealed, to joiners). */
    readonly ringSecret: Uint8Array,
  ) {}

  /**
   * Open the store, join the mesh again from what it holds, and serve. If a step fails (a port in
   * use, say), what the earlier steps opened is closed, newest first, before the error is thrown:
   * a NATS connection, a nats-server or a bound socket left open would keep a ringd that failed to
   * start alive, with no control socket to answer.
   */
  static async start(config: DaemonConfig, log: Logger, store: NodeStore): Promise<Daemon> {
    const opened: (() => Promise<unknown>)[] = [];
    try {
      return await Daemon.#open(config, log, store, opened);
    } catch (err) {
      for (const close of opened.reverse())
        await close().catch((e: unknown) =>
          log.warn({ err: e }, "could not close what a failed start opened"),
        );
      throw err;
    }
  }

  /** Daemon.start's steps; pushes onto `opened` how to close each thing it opens. */
  static async #open(
    config: DaemonConfig,
    log: Logger,
    store: NodeStore,
    opened: (() => Promise<unknown>)[],
  ): Promise<Daemon> {
    const state = new MeshState(store);
    const { mesh, self } = await state.require(config.dataDir);
    const startedMs = Date.now();
    const identity = await store.loadIdentity(startedMs);
    const selfCert = decodeCertificate(decodeEnvelope(self.certificate));
    const certificates = await state.certificates();
    const revocations = await state.revocations();
    const ringSecret = await state.ringSecret();
    if (ringSecret === undefined)
      throw new NotInitializedError(
        `${config.dataDir} holds no ring secret (it was made by an older ringd): make a new seed with 'ringd init', or join again with a new token`,
      );
    const listen = listenParts(config.listen);
    const { host, port, advertiseHost } = listen;
    let node: MeshNode | undefined;
    const { transport, nats } = await openPeerTransport(
      { config, listen, identity, mesh, self, state, certificates, revocations, node: () => node, log },
      opened,
    );
    const clock = systemClock();
    // A ring-N node sits on its parent's network (ring 0 for the seeds themselves).
    const networkRing = Math.max(0, self.ring - 1) as Ring;
    node = new MeshNode({
      identity,
      ring: networkRing,
      rootKey: mesh.rootKey,
      certificates: (hex) => certificates.get(hex),
      // Every frame sealed with the ring secret: brokers and relays carry only ciphertext.
      transport: sealed(transport, ringSecret),
      clock,
      rng: seededRng((Math.random() * 2 ** 31) | 0),
      gossip: { maxFrameBytes: DAEMON_GOSSIP_FRAME_BYTES },
    });
    const meshNode = node;
    opened.push(() => meshNode.stop());
    for (const rev of revocations) node.relay(rev);
    await nats?.refresh(); // the server's keys, now from the full chain checks

    const canIssue = selfCert.roles.includes("issuer");
    let childNetwork: ChildNetwork | undefined;
    if (canIssue && self.ring >= 1) {
      const { openChildNetwork } = await import("./child-network.ts");
      childNetwork = await openChildNetwork({
        identity,
        mesh,
        ring: self.ring,
        state,
        certificates: (hex) => certificates.get(hex),
        // Certified, unrevoked nodes of this ring and the next, as on any network (rings/ingest.ts).
        authorize: (key) => {
          const standing = childNetwork?.node.trust.standing(keyHex(key), Date.now());
          return typeof standing === "object" && isMemberOf(standing, self.ring);
        },
        host,
        port,
        advertiseHost,
        clock,
        maxFrameBytes: DAEMON_GOSSIP_FRAME_BYTES,
      });
      const below = childNetwork.node;
      opened.push(() => below.stop());
      for (const rev of revocations) childNetwork.node.relay(rev);
    }
    const joins = canIssue ? await openJoinEndpoint(identity, listen, store, opened) : undefined;
    const join = joins?.endpoint;
    const info: DaemonInfo = {
      meshId: mesh.meshId,
      nodeKey: keyHex(identity.publicKey),
      fingerprint: fingerprint(identity.publicKey),
      ring: self.ring,
      name: config.name,
      address: transport.address,
      joinAddress: join?.address ?? null,
      controlSocket: config.controlSocket,
      startedMs,
    };
    const daemon = new Daemon(
      config,
      log,
      store,
      state,
      mesh,
      self,
      selfCert,
      node,
      transport,
      certificates,
      joins?.tokens,
      info,
      identity,
      ringSecret,
    );
    daemon.root = await readKeyFile(joinPath(config.dataDir, ROOT_KEY_FILE));
    daemon.#join = join;
    daemon.#nats = nats;
    daemon.childNetwork = childNetwork;
    daemon.#wire();
    opened.push(async () => {
      daemon.#stopped = true;
      clearInterval(daemon.#memberTimer);
      clearTimeout(daemon.#memberSaveSoon);
    });
    if (joins !== undefined) {
      joins.serveJoins(joins.endpoint, {
        identity,
        tokens: joins.tokens,
        counters: daemon.counters,
        now: () => Date.now(),
        admit: (key, name, scope, nowMs) => admitJoiner(daemon, key, name, scope, nowMs),
      });
    }
    const members = (await state.members()).filter((m) => m.id !== info.nodeKey);
    node.start(members, { announce: true });
    // Announce our own certificate (and its chain) too: a member that joined while our issuer's
    // announcement was in flight would otherwise not know our key, and refuse what we send it —
    // results routed up a command's tree through it included.
    for (const env of [...self.chain, self.certificate]) node.relay(env);
    if (childNetwork !== undefined) {
      childNetwork.node.start(await state.childMembers(), { announce: true });
      for (const env of [...self.chain, self.certificate]) childNetwork.node.relay(env);
    }
    nats?.attach(node); // a seed announces its nats-server's route and takes the other seeds'
    // Children an earlier ringd left running are recovered here, not started twice.
    daemon.#supervisor = await openDaemonSupervisor({
      config,
      store,
      clock: daemon.clock,
      log,
      onGiveUp: (event) => daemon.#childGaveUp(event),
    });
    const supervisor = daemon.#supervisor;
    opened.push(() => supervisor.close());
    daemon.#control = await serveControl(config.controlSocket, {
      ...controlHandlers(daemon),
      ...selfHostHandlers(daemon), // node.create: a ringd of the next ring as a child
    });
    log.info(
      {
        meshId: info.meshId,
        node: info.fingerprint,
        ring: info.ring,
        address: info.address,
        join: info.joinAddress,
      },
      "ringd ready",
    );
    return daemon;
  }

  #wire(): void {
    const { node, log } = this;
    const below = this.childNetwork?.node;
    node.onTrust((kind, envelope) => {
      this.#tookTrust(kind, envelope);
      below?.relay(envelope); // the children's network hears of it too (a duplicate stops there)
    });
    node.onCommand((c) => {
      void this.#onCommand(c.id, c.command, c.sender).catch((err) => log.error({ err }, "command failed"));
      // And on to the nodes below, unchanged; this node tops that tree, so it asks again those
      // that do not answer (command-retry.ts).
      if (below?.relay(c.envelope)) this.#awaitBelow(below, c.id, c.envelope, c.command);
    });
    node.onResult((r) => {
      for (const listener of this.#resultListeners) listener(r);
    });
    if (below !== undefined) {
      below.onTrust((kind, envelope) => {
        this.#tookTrust(kind, envelope);
        node.relay(envelope); // a child's certificate is heard up the tree (ringctl nodes)
      });
      // A command that entered below (an operator at a child's socket) runs here through the
      // parent network's handler: relaying it there is how it is run once and spread both ways.
      below.onCommand((c) => node.relay(c.envelope));
      // A child's answer goes up the parent network's command tree, towards the operator.
      below.onResult((r) => {
        this.#carriedDown.get(messageIdKey(r.result.commandId))?.delete(r.sender);
        node.relay(r.envelope);
      });
      below.onMemberChange(() => this.#saveMembersSoon());
    }
    this.#childEvents = wireChildEvents(this);
    this.#memberTimer = setInterval(() => void this.saveMembers(), MEMBER_SAVE_INTERVAL_MS);
    // Written soon after each change too, not only at the next interval: a node killed right after a
    // member joined would otherwise restart knowing nobody, and a member that has no reason to speak
    // up first (nothing suspects it) would stay unknown to it.
    node.onMemberChange(() => this.#saveMembersSoon());
  }

  /** Ask the children that match a command carried down, and have not answered, again until it expires. */
  #awaitBelow(below: MeshNode, id: string, envelope: Uint8Array, command: Command): void {
    const pending = new Set<string>();
    for (const m of below.membership.members()) {
      if (m.state !== "alive" && m.state !== "suspect") continue;
      const cert = below.trust.certificate(m.id); // checked already: nothing to decode again
      if (cert !== undefined && selectorMatches(command.selector, cert)) pending.add(m.id);
    }
    if (pending.size === 0) return;
    this.#carriedDown.set(id, pending);
    if (this.#carriedDown.size > MAX_RECENT_COMMANDS) {
      const oldest = this.#carriedDown.keys().next().value;
      if (oldest !== undefined) this.#carriedDown.delete(oldest);
    }
    retrySilent(below, envelope, () => (this.#carriedDown.get(id) === pending ? [...pending] : []), {
      untilMs: command.expiresMs,
    });
  }

  #saveMembersSoon(): void {
    this.#memberSaveSoon ??= setTimeout(() => {
      this.#memberSaveSoon = undefined;
      void this.saveMembers().catch((err) => this.log.warn({ err }, "could not save members"));
    }, MEMBER_SAVE_DEBOUNCE_MS);
  }

  /** Persist a certificate or revocation either network took in, and act on it. */
  #tookTrust(kind: "certificate" | "revocation", envelope: Uint8Array): void {
    const { state, log } = this;
    if (kind === "certificate") {
      const cert = decodeCertificate(decodeEnvelope(envelope));
      this.certificates.set(keyHex(cert.subject), envelope);
      void this.#nats?.refresh().catch((err) => log.error({ err }, "nats-server did not take a new member"));
      void state
        .putCertificate(envelope)
        .catch((err) => log.error({ err }, "could not persist a certificate"));
      return;
    }
    void state.putRevocation(envelope).catch((err) => log.error({ err }, "could not persist a revocation"));
    const { subject } = decodeRevocation(decodeEnvelope(envelope));
    for (const transport of [this.transport, this.childNetwork?.transport])
      void transport?.revoke(subject).catch((err) => log.warn({ err }, "could not close a revoked peer"));
  }

  /** The node's supervised children; open from the end of `start` until `stop` (children outlive it). */
  get supervisor(): Supervisor {
    if (this.#supervisor === undefined) throw new Error("the daemon's supervisor is not open yet");
    return this.#supervisor;
  }

  /** The give-ups this node heard of (its own included), for `ringctl child events`. */
  get childEvents(): ChildEvents {
    if (this.#childEvents === undefined) throw new Error("the daemon is not wired yet");
    return this.#childEvents;
  }

  #childGaveUp(e: ChildGiveUpEvent): void {
    if (!this.#stopped) this.childEvents.gaveUp(e);
  }

  /** The NATS link (transport "nats"), or undefined on ZeroMQ. */
  get natsLink(): NatsLink | undefined {
    return this.#nats;
  }

  /** Listen to every signed result this node hears; returns the function that stops listening. */
  listenResults(listener: (r: DeliveredResult) => void): () => void {
    this.#resultListeners.add(listener);
    return () => this.#resultListeners.delete(listener);
  }

  async #onCommand(
    id: string,
    command: import("../../protocol/index.ts").Command,
    sender: string,
  ): Promise<void> {
    if (this.#stopped || !selectorMatches(command.selector, this.selfCert)) return;
    const now = Date.now();
    if (command.issuedAtMs > now + 30_000) {
      this.counters.inc("rejected:command-from-the-future");
      return;
    }
    if (!(await this.store.markCommandSeen(messageIdFromKey(id), command.expiresMs))) {
      this.counters.inc("rejected:command-replayed");
      return;
    }
    await this.store.appendAudit(
      "command",
      { id, operator: sender, action: command.action, args: command.args },
      now,
    );
    const children = this.#supervisor && {
      supervisor: this.#supervisor,
      senderRoles: this.node.trust.certificate(sender)?.roles ?? [],
    };
    const result = await runCommand(command, messageIdFromKey(id), children);
    if (this.#stopped) return;
    this.node.publishResult(result);
    this.counters.inc("commands-run");
  }

  /** Write the members currently known to the store. */
  async saveMembers(): Promise<void> {
    const members = this.node.membership
      .members()
      .filter((m) => m.state !== "dead" && m.id !== this.info.nodeKey)
      .map((m) => ({ id: m.id as NodeId, addr: m.addr, incarnation: m.incarnation }));
    await this.state.putMembers(members);
    if (this.childNetwork !== undefined) await this.state.putChildMembers(this.childNetwork.members());
  }

  /** Leave gracefully, stop serving, persist members, close the store. Idempotent. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#memberTimer !== undefined) clearInterval(this.#memberTimer);
    if (this.#memberSaveSoon !== undefined) clearTimeout(this.#memberSaveSoon);
    this.node.leave();
    this.childNetwork?.node.leave();
    await new Promise((r) => setTimeout(r, 200));
    await this.saveMembers().catch(() => undefined);
    await this.#control?.close();
    await this.#supervisor?.close(); // children keep running; the next start recovers them
    await this.node.stop();
    await this.childNetwork?.node.stop();
    await this.#join?.close();
    await this.#nats?.close();
    await this.store.close();
  }
}
