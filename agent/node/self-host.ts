/**
 * Self-hosting: a ring-N ringd starts a ring-(N+1) ringd as one of its supervised children, and the
 * child joins the mesh by itself with a one-time token its parent minted for it. DESIGN.md: "no cloud
 * that can't host and deploy itself".
 *
 * The child is an ordinary Supervisor child (any strategy: unix-user, jail, proc, vm with a guest
 * that has node) whose command runs this same ringd, from the same install (the built JavaScript,
 * or the sources under tsx when that is how the parent runs), as
 *
 *   /bin/sh -c 'h=$1; shift; exec "$@" --listen "$h:$PORT"' ringd-child HOST \
 *     node [shebang options] [--import tsx] .../ctl/bin/ringd.(js|ts) start --data-dir state \
 *     --join-token-file join-token --children-dir children --child-ports FIRST-LAST --name NAME ...
 *
 * The shell only puts the port the parent allocated (PORT, set by every driver) into `--listen`.
 * Paths are relative to the child's own directory (its cwd under every driver), so that they hold
 * inside a jail too: `state/` is the child's data dir (its node key, 0600, never leaves it), and
 * `children/` holds its own children. `join-token` is a 0600 file the parent writes into the child's
 * directory before the first start: the token never appears in an argument list, an environment or
 * the child's record. The unix-user and jail drivers hand the directory (0700) and everything in it
 * to the child's own user on its first start, so no other child can read the token or the state.
 *
 * `ringd start --join-token-file` (ctl/ringd-node.ts) joins when `state/` holds no node yet and
 * deletes the file; on every later start (a restart by the supervisor, a recovery after the parent
 * restarted) it just starts, with the node's own key: no token is needed again.
 *
 * A ringd child listens on more than PORT: on PORT + 1 for joins (it is an issuer) and on PORT + 4
 * for the children's network it hosts (ringd-ports.ts). It is therefore allocated the whole block
 * PORT .. PORT + RINGD_PORT_BLOCK - 1 (the supervisor's portCount), so its parent hands none of those
 * ports to another child. Its own children get ports from the range given here, which must not
 * overlap its parent's range, and so not its own block either (which lies in that range).
 */
import { constants as fsc } from "node:fs";
import { open } from "node:fs/promises";
import { isAbsolute, join } from "node:path";
import type { CreatedToken, TokenRequest } from "../../bootstrap/index.ts";
import { type Certificate, EnjinError, type Ring } from "../../protocol/index.ts";
import type {
  ChildInfo,
  ChildLimits,
  ChildSpec,
  CreateChildRequest,
  HealthCheckInput,
  PortRange,
  RestartPolicy,
} from "../supervise/index.ts";
import { checkGrantable } from "./admit.ts";
import { RINGD_PORT_BLOCK } from "./ringd-ports.ts";
import { checkLabels } from "./seed.ts";
import { JAIL_STRATEGY, type RingdLauncher, ringdLauncher } from "./self-host-launcher.ts";

/** The strategy whose cgroup a restarting ringd shares with the children it left running. */
const UNIX_USER_STRATEGY = "unix-user";

/** The child's data dir, relative to its own directory. */
export const RINGD_CHILD_STATE_DIR = "state";
/** The file holding the child's join token until its first start used it. */
export const RINGD_CHILD_TOKEN_FILE = "join-token";
/** Where the child keeps its own children, relative to its own directory. */
export const RINGD_CHILD_CHILDREN_DIR = "children";
/** How long a ringd child's token is valid by default: its first start must join within this. */
export const DEFAULT_RINGD_CHILD_TOKEN_TTL_MS = 15 * 60_000;
/** Most a ringd child's token may live: it is written to disk, so keep it short. */
export const MAX_RINGD_CHILD_TOKEN_TTL_MS = 24 * 3_600_000;

/** Base of the errors of self-hosting. */
export class SelfHostError extends EnjinError {
  override readonly reason: string = "self-host";
}
/** This node cannot host a ringd child as asked (its ring, or the request itself). */
export class RingdChildRequestError extends SelfHostError {
  override readonly reason = "ringd-child-request";
}
/** The child's first start failed; it was removed and its token revoked. */
export class RingdChildStartError extends SelfHostError {
  override readonly reason = "ringd-child-start";
}

/** What the operator asks for. */
export interface RingdChildRequest {
  /** The child's name (a Supervisor child name; also its ringd `--name`). */
  readonly name: string;
  /** The supervision strategy: "unix-user", "jail", "proc", ... */
  readonly strategy: string;
  /** The ports the child hands its own children; must not overlap this node's range. */
  readonly childPorts: PortRange;
  readonly tiers?: readonly string[];
  /** Nested under this node's compartment; default: this node's. */
  readonly compartment?: readonly string[];
  readonly limits?: ChildLimits;
  readonly restartPolicy?: Partial<RestartPolicy>;
  readonly health?: readonly HealthCheckInput[];
  /** The child's ringd log level (default "info"). */
  readonly logLevel?: string;
  /** How long the token may wait for the first start (default DEFAULT_RINGD_CHILD_TOKEN_TTL_MS). */
  readonly tokenTtlMs?: number;
}

/** What the parent provides: its supervisor, its token issuer, its own standing. */
export interface SelfHostDeps {
  readonly supervisor: {
    create(request: CreateChildRequest): Promise<ChildInfo>;
    start(name: string): Promise<void>;
    get(name: string): ChildInfo;
    remove(name: string): Promise<void>;
  };
  readonly tokens: {
    create(request: TokenRequest, nowMs: number): Promise<CreatedToken>;
    revoke(tokenId: string, nowMs: number): Promise<boolean>;
  };
  /** This node's certificate: the child's ring is one more, its labels within these. */
  readonly selfCert: Certificate;
  /** This node's own child port range (the child's must lie outside it). */
  readonly ports: PortRange;
  /** Host part of this node's `listen` ("127.0.0.1", "0.0.0.0", "[::1]"): the child listens there too. */
  readonly listenHost: string;
  /** This node's transport: the child uses the same. */
  readonly transport: "zeromq" | "nats";
  /** This node's existing NATS cluster (config natsUrl, natsCaFile), if any: the child uses it too. */
  readonly nats?: { readonly url: string; readonly caFile: string };
  readonly nowMs: () => number;
  /** How ringd is run (default: as this process runs it). */
  readonly launcher?: RingdLauncher;
  /** Record what was done (the node's audit log). */
  readonly audit?: (kind: string, data: Readonly<Record<string, unknown>>) => Promise<void>;
}

/** What `createRingdChild` returns. */
export interface RingdChildCreated {
  readonly child: ChildInfo;
  /** The ring the child joins as. */
  readonly ring: Ring;
  /** The id of the token minted for it (the secret went only to the child's file). */
  readonly tokenId: string;
  readonly tokenExpiresMs: number;
}

const fail = (message: string): never => {
  throw new RingdChildRequestError(message);
};

const overlaps = (a: PortRange, b: PortRange) => a.firstPort <= b.lastPort && b.firstPort <= a.lastPort;

/**
 * The child's own port range, checked: whole ports, first <= last, not overlapping `parent`'s range
 * (from which the child's whole block of listen ports comes, so it cannot overlap those either).
 * RingdChildRequestError otherwise.
 */
export function checkRingdChildPorts(range: PortRange, parent: PortRange): PortRange {
  const { firstPort, lastPort } = range ?? {};
  for (const [field, value] of [
    ["firstPort", firstPort],
    ["lastPort", lastPort],
  ] as const)
    if (!Number.isSafeInteger(value) || value < 1 || value > 65_535)
      fail(`the child's port range ${field} must be a port 1-65535, got ${String(value)}`);
  if (firstPort > lastPort) fail(`the child's port range ${firstPort}-${lastPort} is empty`);
  if (overlaps(range, parent))
    fail(
      `the child's port range ${firstPort}-${lastPort} overlaps this node's (${parent.firstPort}-${parent.lastPort}); ` +
        "give it ports of its own",
    );
  return { firstPort, lastPort };
}

/** What ringdChildSpec builds from. */
export interface RingdChildSpecInput {
  readonly name: string;
  readonly launcher: RingdLauncher;
  readonly listenHost: string;
  readonly transport: "zeromq" | "nats";
  readonly childPorts: PortRange;
  readonly logLevel: string;
  readonly strategy: string;
  readonly limits?: ChildLimits;
  /** The parent's existing NATS cluster, if it uses one: the child must use it too. */
  readonly nats?: { readonly url: string; readonly caFile: string };
}

/** The Supervisor spec of a ringd child (pure). */
export function ringdChildSpec(input: RingdChildSpecInput): ChildSpec {
  const { launcher, childPorts } = input;
  if (!/^(\[[0-9A-Fa-f:.]+\]|[0-9A-Za-z.-]{1,253})$/.test(input.listenHost))
    fail(`listen host ${JSON.stringify(input.listenHost)} is not an address or host name`);
  const command = [
    "/bin/sh",
    "-c",
    // Only PORT is expanded; every other word is passed through as it is.
    'h=$1; shift; exec "$@" --listen "$h:$PORT"',
    "ringd-child",
    input.listenHost,
    ...launcher.command,
    "start",
    "--data-dir",
    RINGD_CHILD_STATE_DIR,
    "--join-token-file",
    RINGD_CHILD_TOKEN_FILE,
    "--children-dir",
    RINGD_CHILD_CHILDREN_DIR,
    "--child-ports",
    `${childPorts.firstPort}-${childPorts.lastPort}`,
    "--name",
    input.name,
    "--transport",
    input.transport,
    "--log-level",
    input.logLevel,
    ...(input.nats !== undefined ? ["--nats-url", input.nats.url, "--nats-ca-file", input.nats.caFile] : []),
  ];
  return {
    name: input.name,
    command,
    ...(input.limits !== undefined ? { limits: input.limits } : {}),
    // In a jail only the system directories exist: ringd's install must be bound in, read-only.
    ...(input.strategy === JAIL_STRATEGY ? { driver: { roBinds: [...launcher.readOnlyPaths] } } : {}),
    // A ringd's own children outlive it on purpose (it recovers them when it is back): under
    // unix-user, its restart joins them in its cgroup instead of being refused.
    ...(input.strategy === UNIX_USER_STRATEGY ? { driver: { adoptDescendants: true } } : {}),
  };
}

/** Write the token where only the child (once its directory is handed to it) can read it. */
async function writeTokenFile(path: string, token: string): Promise<void> {
  const file = await open(path, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
  try {
    await file.writeFile(`${token}\n`);
  } finally {
    await file.close();
  }
}

/**
 * Start a ring-(N+1) ringd as a child of this ring-N node: check the request, create the child
 * (stopped), mint a one-use token scoped to it, write the token into the child's directory, start
 * it. A refusal changes nothing; a child whose first start fails is removed and its token revoked.
 * The child then joins by itself; `ringctl nodes` shows it once it has its certificate.
 */
export async function createRingdChild(
  deps: SelfHostDeps,
  request: RingdChildRequest,
): Promise<RingdChildCreated> {
  const own = deps.selfCert;
  if (own.ring >= 2)
    fail(`a ring-${own.ring} node runs apps, not ringd nodes: there is no ring ${own.ring + 1}`);
  const ring = (own.ring + 1) as Ring;
  const tiers = [...(request.tiers ?? [])];
  const compartment = [...(request.compartment ?? own.compartment)];
  checkLabels("tier", tiers);
  checkLabels("compartment part", compartment);
  checkGrantable({ selfCert: own, root: undefined }, { ring, tiers, compartment });
  const ttlMs = request.tokenTtlMs ?? DEFAULT_RINGD_CHILD_TOKEN_TTL_MS;
  if (!Number.isSafeInteger(ttlMs) || ttlMs < 1_000 || ttlMs > MAX_RINGD_CHILD_TOKEN_TTL_MS)
    fail(`tokenTtlMs must be 1000..${MAX_RINGD_CHILD_TOKEN_TTL_MS} ms, got ${String(ttlMs)}`);
  const childPorts = checkRingdChildPorts(request.childPorts, deps.ports);
  const launcher = deps.launcher ?? ringdLauncher();
  const spec = ringdChildSpec({
    name: request.name,
    launcher,
    listenHost: deps.listenHost,
    transport: deps.transport,
    childPorts,
    logLevel: request.logLevel ?? "info",
    strategy: request.strategy,
    limits: request.limits,
    nats: deps.nats,
  });
  const created = await deps.supervisor.create({
    spec,
    strategy: request.strategy,
    ...(request.restartPolicy !== undefined ? { restartPolicy: request.restartPolicy } : {}),
    ...(request.health !== undefined ? { health: request.health } : {}),
    portCount: RINGD_PORT_BLOCK,
    start: false,
  });
  if (!isAbsolute(created.dir)) throw new SelfHostError(`the supervisor gave a relative dir ${created.dir}`);
  let minted: CreatedToken | undefined;
  try {
    minted = await deps.tokens.create({ ring, tiers, compartment, ttlMs, uses: 1 }, deps.nowMs());
    await deps.audit?.("token-created", {
      id: minted.info.id,
      scope: minted.info.scope,
      for: `ringd child ${request.name}`,
    });
    await writeTokenFile(join(created.dir, RINGD_CHILD_TOKEN_FILE), minted.token);
    await deps.supervisor.start(request.name);
  } catch (err) {
    await undo(deps, request.name, minted);
    throw err;
  }
  const child = deps.supervisor.get(request.name);
  if (child.phase !== "running" && child.phase !== "starting") {
    await undo(deps, request.name, minted);
    throw new RingdChildStartError(
      `ringd child ${request.name} did not start (${child.phase}): ${child.lastExit ?? "no reason given"}; ` +
        "it was removed and its token revoked",
    );
  }
  await deps.audit?.("ringd-child-created", { name: request.name, ring, strategy: request.strategy });
  return { child, ring, tokenId: minted.info.id, tokenExpiresMs: minted.info.expiresMs };
}

async function undo(deps: SelfHostDeps, name: string, minted: CreatedToken | undefined): Promise<void> {
  await deps.supervisor.remove(name).catch(() => undefined);
  if (minted !== undefined) await deps.tokens.revoke(minted.info.id, deps.nowMs()).catch(() => undefined);
}
