/**
 * ringd's node commands: `init` (make a ring-0 seed), `join TOKEN` (become a member with a
 * one-time token) and `start` (run the node until SIGTERM or SIGINT). Each reads the configuration
 * the way `ringd config show` prints it; `init` and `join` write what they decided (ring, listen
 * address, name, labels) into <dataDir>/ringd.json so that a later `start` needs no flags.
 * `start --join-token-file FILE` joins first when the data directory holds no node yet, so that one
 * command line serves a supervised child's first start and every restart (agent/node/self-host.ts).
 *
 * The store, the daemon and the join client are imported inside the command that needs them, so
 * `ringd version`, `help` and `config` load none of LevelDB, ZeroMQ or NATS, and `start` loads only
 * the transport its configuration names (docs/BENCHMARKS.md: start-up).
 */
import { constants as fsc } from "node:fs";
import { open, readFile, rm, writeFile } from "node:fs/promises";
import { join as joinPath } from "node:path";
import {
  CONFIG_FILE_NAME,
  createLogger,
  type DaemonConfig,
  loadConfig,
  processHost,
} from "../agent/daemon/index.ts";
import type { Daemon } from "../agent/node/daemon.ts";
import type { CommandContext, CommandSpec } from "./cli.ts";
import { configFlagsFrom, configOptions } from "./config-options.ts";
import { CliError, UsageError } from "./errors.ts";
import { ExitCode } from "./exit-codes.ts";

async function config(ctx: CommandContext): Promise<DaemonConfig> {
  const { flags, configFile } = configFlagsFrom(ctx.values);
  const loaded = await loadConfig({
    flags,
    ...(configFile !== undefined ? { configFile } : {}),
    env: ctx.io.env,
    host: processHost(),
  });
  return loaded.config;
}

/** Merge `fields` into <dataDir>/ringd.json (creating it), keeping what is already there. */
async function saveConfig(dataDir: string, fields: Record<string, unknown>): Promise<string> {
  const path = joinPath(dataDir, CONFIG_FILE_NAME);
  let current: Record<string, unknown> = {};
  try {
    current = JSON.parse(await readFile(path, "utf8")) as Record<string, unknown>;
  } catch {
    current = {};
  }
  await writeFile(path, `${JSON.stringify({ ...current, ...fields }, null, 2)}\n`, { mode: 0o600 });
  return path;
}

/** The fields `init`/`join` record: those the operator gave on the command line. */
function givenFields(ctx: CommandContext, cfg: DaemonConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (typeof ctx.values.listen === "string") out.listen = cfg.listen;
  if (typeof ctx.values.name === "string") out.name = cfg.name;
  if (typeof ctx.values.transport === "string") out.transport = cfg.transport;
  if (ctx.values.compartment !== undefined) out.compartment = cfg.compartment;
  if (ctx.values.tier !== undefined) out.tiers = cfg.tiers;
  return out;
}

/** Run the daemon in the foreground until SIGTERM or SIGINT; resolves with the exit code. */
async function runDaemon(ctx: CommandContext, cfg: DaemonConfig): Promise<ExitCode> {
  // Listen for the signal before anything starts: a SIGTERM that arrives while the node starts (or
  // just as its control socket answers) stops it once it is up, instead of killing it mid-write.
  let stopSignal: string | undefined;
  const stopping = new Promise<string>((resolve) => {
    const onSignal = (signal: string) => {
      stopSignal = signal;
      resolve(signal);
    };
    process.once("SIGTERM", onSignal);
    process.once("SIGINT", onSignal);
  });
  const log = createLogger(cfg);
  const [{ openStore }, { Daemon }] = await Promise.all([
    import("../agent/store/store.ts"),
    import("../agent/node/daemon.ts"),
  ]);
  const store = await openStore(cfg.dataDir);
  let daemon: Daemon;
  try {
    daemon = await Daemon.start(cfg, log, store);
  } catch (err) {
    await store.close();
    throw err;
  }
  ctx.result(
    daemon.info,
    () =>
      `ringd ready: node ${daemon.info.fingerprint} (ring ${daemon.info.ring}) in mesh ${daemon.info.meshId}, listening on ${daemon.info.address}`,
  );
  const signalledDuringStart = stopSignal !== undefined;
  log.info({ signal: await stopping, signalledDuringStart }, "stopping");
  await daemon.stop();
  return ExitCode.Ok;
}

/** What `join` prints: the node that joined. */
interface Joined {
  readonly meshId: string;
  readonly nodeKey: string;
  readonly ring: number;
  readonly tiers: readonly string[];
  readonly compartment: readonly string[];
  readonly issuer: string;
}

function joinedText(j: Joined): string {
  return `joined mesh ${j.meshId} as a ring-${j.ring} node${j.tiers.length > 0 ? ` (tiers ${j.tiers.join(",")})` : ""}`;
}

/** The join token file of `start --join-token-file` is missing, unsafe or empty. Exit 5. */
export class JoinTokenFileError extends CliError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, ExitCode.Config, options);
  }
}

/** Largest join token file read (a token is ~200 characters). */
export const MAX_JOIN_TOKEN_FILE_BYTES = 4096;

/**
 * The token in `path`: a regular file (not a link) that only its owner may read or write, holding
 * one token line. Anything else is a JoinTokenFileError saying what to fix.
 */
export async function readJoinTokenFile(path: string): Promise<string> {
  let file: Awaited<ReturnType<typeof open>>;
  try {
    file = await open(path, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  } catch (err) {
    throw new JoinTokenFileError(
      `cannot open the join token file ${path} (${(err as NodeJS.ErrnoException).code ?? String(err)}); ` +
        "it must be a regular file, not a link, readable by the user running ringd",
      { cause: err },
    );
  }
  try {
    const info = await file.stat();
    if (!info.isFile()) throw new JoinTokenFileError(`the join token file ${path} is not a regular file`);
    if ((info.mode & 0o077) !== 0)
      throw new JoinTokenFileError(
        `the join token file ${path} may be read by others (mode ${(info.mode & 0o777).toString(8)}); ` +
          `run 'chmod 600 ${path}' (a token is a secret)`,
      );
    if (info.size > MAX_JOIN_TOKEN_FILE_BYTES)
      throw new JoinTokenFileError(
        `the join token file ${path} holds ${info.size} bytes, at most ${MAX_JOIN_TOKEN_FILE_BYTES}: is it the token?`,
      );
    const token = (await file.readFile("utf8")).trim();
    if (token === "") throw new JoinTokenFileError(`the join token file ${path} is empty`);
    return token;
  } finally {
    await file.close();
  }
}

/**
 * Join the mesh with the token `readToken` gives: make the key, redeem, store the certificate and
 * the trust bundle, record ring and the given fields in ringd.json. A data directory that already
 * holds a node is refused (AlreadyInitializedError), or with `ifJoined: "skip"` left as it is
 * (undefined is returned, and the token is not read).
 */
async function joinMesh(
  ctx: CommandContext,
  cfg: DaemonConfig,
  readToken: () => Promise<string>,
  ifJoined: "refuse" | "skip" = "refuse",
): Promise<Joined | undefined> {
  const [
    { openStore },
    { joinWithToken },
    { MeshState },
    { parseNatsJoinPeers },
    { openRingSecret },
    { AlreadyInitializedError },
    { decodeCertificate, decodeEnvelope, keyHex },
  ] = await Promise.all([
    import("../agent/store/store.ts"),
    import("../agent/node/join.ts"),
    import("../agent/node/mesh-state.ts"),
    import("../agent/node/nats-link.ts"),
    import("../agent/node/ring-secret.ts"),
    import("../agent/node/seed.ts"),
    import("../protocol/index.ts"),
  ]);
  const store = await openStore(cfg.dataDir);
  try {
    const state = new MeshState(store);
    const existing = await state.mesh();
    if (existing !== undefined && ifJoined === "skip") return undefined;
    if (existing !== undefined)
      throw new AlreadyInitializedError(
        `${cfg.dataDir} already belongs to mesh ${existing.meshId}; start it with 'ringd start --data-dir ${cfg.dataDir}' (no token needed)`,
      );
    const token = await readToken();
    const identity = await store.loadIdentity(Date.now());
    const host = cfg.listen.slice(0, cfg.listen.lastIndexOf(":"));
    const joined = await joinWithToken({
      token,
      identity,
      name: cfg.name,
      listen: `tcp://${host === "0.0.0.0" ? "*" : host}:0`,
      ...(host === "0.0.0.0" ? { advertiseHost: "127.0.0.1" } : {}),
      nowMs: () => Date.now(),
      onAttempt: (endpoint, attempt) => ctx.info(`joining via ${endpoint} (attempt ${attempt}) ...`),
    });
    const { response } = joined;
    const cert = decodeCertificate(decodeEnvelope(response.certificate));
    await state.establish(
      joined.rootKey,
      { ring: cert.ring, certificate: response.certificate, chain: response.chain },
      response.certificates,
      response.revocations,
      response.members
        .filter((m) => keyHex(m.node) !== keyHex(identity.publicKey))
        .map((m) => ({ id: keyHex(m.node), addr: m.addr, incarnation: m.incarnation })),
      parseNatsJoinPeers(response.peers), // a NATS mesh's server, to fetch and pin at start
      openRingSecret(response.sealedSecrets, identity), // sealed to this node's key alone
    );
    await saveConfig(cfg.dataDir, { ring: cert.ring, ...givenFields(ctx, cfg) });
    return {
      meshId: (await state.mesh())!.meshId,
      nodeKey: keyHex(identity.publicKey),
      ring: cert.ring,
      tiers: cert.tiers,
      compartment: cert.compartment,
      issuer: keyHex(joined.issuerKey),
    };
  } finally {
    await store.close();
  }
}

const nodeOptions = configOptions();

/** `ringd init`: make the first ring-0 node of a new mesh. */
export const initCommand: CommandSpec = {
  words: ["init"],
  summary: "create a new mesh: its root key and a ring-0 seed node in the data directory",
  description:
    "Create the mesh's root key (<dataDir>/root.key, mode 0600; the mesh id is its fingerprint), " +
    "this node's key (<dataDir>/node.key), the seed's certificate (ring 0, roles node, issuer, " +
    "admin) and a first operator key for ringctl on this machine (<dataDir>/operator.key, an " +
    "admin). The options given (--listen, --name, --compartment, --tier, --transport) are saved in " +
    "<dataDir>/ringd.json for 'ringd start'.\n\n" +
    "Keep root.key safe: whoever holds it can certify ring-0 nodes. A directory that already " +
    "belongs to a mesh is refused and left unchanged.",
  options: nodeOptions,
  jsonOutput:
    '{"meshId", "nodeKey", "nodeFingerprint", "rootKeyFile", "operatorKeyFile", "operatorKey", "configFile"}',
  exitCodes: [ExitCode.Config],
  examples: [
    {
      command: "ringd init --data-dir /var/lib/enjin --listen 10.0.0.1:7470",
      description: "Make a seed listening on 10.0.0.1.",
    },
  ],
  async run(ctx) {
    if (ctx.values.ring !== undefined && ctx.values.ring !== "0")
      throw new UsageError(
        `init makes a ring-0 seed; a ring-${ctx.values.ring} node joins with 'ringd join TOKEN'`,
      );
    const cfg = { ...(await config(ctx)), ring: 0 as const };
    const [{ openStore }, { initSeed }] = await Promise.all([
      import("../agent/store/store.ts"),
      import("../agent/node/seed.ts"),
    ]);
    const store = await openStore(cfg.dataDir);
    try {
      const made = await initSeed({
        dataDir: cfg.dataDir,
        store,
        compartment: cfg.compartment,
        tiers: cfg.tiers,
        nowMs: Date.now(),
      });
      const configFile = await saveConfig(cfg.dataDir, { ring: 0, ...givenFields(ctx, cfg) });
      ctx.result({ ...made, configFile }, () =>
        [
          `mesh ${made.meshId}`,
          `seed node ${made.nodeFingerprint}`,
          `root key ${made.rootKeyFile} (keep it safe)`,
          `operator key ${made.operatorKeyFile} (admin; ringctl uses it)`,
          `start it with: ringd start --data-dir ${cfg.dataDir}`,
        ].join("\n"),
      );
    } finally {
      await store.close();
    }
    return ExitCode.Ok;
  },
};

/** `ringd start`: run the node. */
export const startCommand: CommandSpec = {
  words: ["start"],
  summary: "run this node until SIGTERM or SIGINT",
  description:
    "Open the node's state in the data directory, rejoin the mesh from what it holds (no token is " +
    "needed after the first join), and serve: gossip and membership on the peer address, joins on " +
    "the next port when the node may issue certificates, and ringctl on the control socket. With " +
    "--transport nats, a ring-0 seed runs nats-server on the port after that (state in <dataDir>/nats) " +
    "and every other node connects to the server its issuer named at join. Logs " +
    "go to stderr as JSON (or --log-file). SIGTERM or SIGINT leaves the mesh gracefully.\n\n" +
    "With --join-token-file FILE, a data directory that holds no node yet joins first with the " +
    "token in FILE (as 'ringd join' would; FILE must be a regular file of mode 0600 or stricter) " +
    "and FILE is deleted once the node is stored; a directory that holds a node already starts as " +
    "it is and FILE, if still there, is deleted unread. One command line thus serves a supervised " +
    "child's first start and every restart, and the token never appears in its arguments.",
  options: {
    ...nodeOptions,
    "join-token-file": {
      type: "string",
      valueName: "FILE",
      description:
        "Join with the token in FILE first when the data directory holds no node yet; FILE is deleted once used or not needed.",
    },
  },
  jsonOutput:
    '{"meshId", "nodeKey", "fingerprint", "ring", "name", "address", "joinAddress", "controlSocket", "startedMs"} once ready',
  exitCodes: [ExitCode.Config, ExitCode.Refused, ExitCode.Unreachable],
  examples: [
    {
      command: "ringd start --data-dir /var/lib/enjin",
      description: "Run the node whose state is in /var/lib/enjin.",
    },
    {
      command: "ringd start --data-dir state --join-token-file join-token --listen 0.0.0.0:7480",
      description: "Join with the token in ./join-token on the first start, then run; later starts just run.",
    },
  ],
  async run(ctx) {
    const cfg = await config(ctx);
    const tokenFile = ctx.values["join-token-file"];
    if (typeof tokenFile === "string") {
      const joined = await joinMesh(ctx, cfg, () => readJoinTokenFile(tokenFile), "skip");
      if (joined !== undefined) ctx.info(joinedText(joined));
      // Used, or not needed: a token left behind is a secret lying about.
      await rm(tokenFile, { force: true });
    }
    return runDaemon(ctx, cfg);
  },
};

/** `ringd join TOKEN`: become a member with a one-time token. */
export const joinCommand: CommandSpec = {
  words: ["join"],
  summary: "join a mesh with a one-time token, then (with --start) run the node",
  description:
    "Make this node's key, check that the issuer named in the token holds the key the token's " +
    "fingerprint names (nothing is sent to anyone else), prove knowledge of the token's secret " +
    "without sending it, and receive this node's certificate and the trust bundle, which are " +
    "stored in the data directory. From then on the node's own key is its credential: 'ringd " +
    "start' needs no token. With --start the node runs at once, as 'ringd start' would.",
  options: {
    ...nodeOptions,
    start: { type: "boolean", description: "After joining, run the node in the foreground." },
  },
  arguments: [{ name: "TOKEN", description: "The token printed by 'ringctl token create'.", required: true }],
  jsonOutput: '{"meshId", "nodeKey", "ring", "tiers", "compartment", "issuer"}',
  exitCodes: [ExitCode.Unreachable, ExitCode.Refused, ExitCode.Config],
  examples: [
    { command: "ringd join enjin1.AAAA… --data-dir /var/lib/enjin --start", description: "Join and run." },
  ],
  async run(ctx) {
    const cfg = await config(ctx);
    // "refuse" mode never returns undefined: a directory in use is an AlreadyInitializedError.
    const joined = (await joinMesh(ctx, cfg, async () => ctx.positionals[0]!.trim()))!;
    ctx.result(joined, () => joinedText(joined));
    if (ctx.values.start === true) return runDaemon(ctx, { ...(await config(ctx)) });
    ctx.info(`start it with: ringd start --data-dir ${cfg.dataDir}`);
    return ExitCode.Ok;
  },
};
