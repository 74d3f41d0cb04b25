/**
 * ringd's node commands: `init` (make a ring-0 seed), `join TOKEN` (become a member with a
 * one-time token) and `start` (run the node until SIGTERM or SIGINT). Each reads the configuration
 * the way `ringd config show` prints it; `init` and `join` write the ring they decided and every
 * setting the operator gave (flags, ENJIN_* variables, a --config file; never a token) into
 * <dataDir>/ringd.json, so that a later `start --data-dir DIR` needs no other flag.
 * `start --join-token-file FILE` joins first when the data directory holds no node yet, so that one
 * command line serves a supervised child's first start and every restart (agent/node/self-host.ts).
 *
 * The store, the daemon and the join client are imported inside the command that needs them, so
 * `ringd version`, `help` and `config` load none of LevelDB, ZeroMQ or NATS, and `start` loads only
 * the transport its configuration names (docs/BENCHMARKS.md: start-up).
 */
import { constants as fsc } from "node:fs";
import { open, rm } from "node:fs/promises";
import {
  configFileValues,
  createLogger,
  type DaemonConfig,
  loadConfig,
  mergeConfigFile,
  processHost,
  type ResolvedConfig,
} from "../agent/daemon/index.ts";
import type { Daemon } from "../agent/node/daemon.ts";
import type { CommandContext, CommandSpec } from "./cli.ts";
import { configFlagsFrom, configOptions } from "./config-options.ts";
import { CliError, UsageError } from "./errors.ts";
import { ExitCode } from "./exit-codes.ts";

/** The configuration as `ringd config show` prints it: merged, validated, with each field's source. */
async function resolved(ctx: CommandContext): Promise<ResolvedConfig> {
  const { flags, configFile } = configFlagsFrom(ctx.values);
  return loadConfig({
    flags,
    ...(configFile !== undefined ? { configFile } : {}),
    env: ctx.io.env,
    host: processHost(),
  });
}

async function config(ctx: CommandContext): Promise<DaemonConfig> {
  return (await resolved(ctx)).config;
}

/**
 * Record in <dataDir>/ringd.json the ring `init`/`join` decided and every setting the operator gave
 * (flags, ENJIN_* variables, a --config file), so that `ringd start --data-dir DIR` alone brings
 * the node back as it was set up.
 */
function recordSettings(settings: ResolvedConfig, ring: number): Promise<string> {
  return mergeConfigFile(settings.config.dataDir, { ...configFileValues(settings, ["ring"]), ring });
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
  settings: ResolvedConfig,
  readToken: () => Promise<string>,
  ifJoined: "refuse" | "skip" = "refuse",
): Promise<Joined | undefined> {
  const [
    { openStore },
    { joinWithToken, JOIN_ATTEMPTS_PER_ENDPOINT, JOIN_ATTEMPT_TIMEOUT_MS },
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
  const cfg = settings.config;
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
      onAttempt: (endpoint, attempt) =>
        ctx.info(
          attempt === 1
            ? `joining via ${endpoint} ...`
            : `no answer yet from ${endpoint}; asking again (attempt ${attempt} of ${JOIN_ATTEMPTS_PER_ENDPOINT}, ` +
                `waiting up to ${(attempt * JOIN_ATTEMPT_TIMEOUT_MS) / 1000} s) ...`,
        ),
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
    await recordSettings(settings, cert.ring);
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

/** What init's and join's help say about ringd.json. */
const SETTINGS_RECORDED =
  "Every setting given by a flag (but --data-dir), an ENJIN_* variable or a --config file is " +
  "recorded in <dataDir>/ringd.json, with the ring, paths made absolute, so that 'ringd start " +
  "--data-dir DIR' alone runs the node as set up here; flags and variables given to 'start' still " +
  "override the file. Defaults are not recorded.";

/** `ringd init`: make the first ring-0 node of a new mesh. */
export const initCommand: CommandSpec = {
  words: ["init"],
  summary: "create a new mesh: its root key and a ring-0 seed node in the data directory",
  description:
    "Create the mesh's root key (<dataDir>/root.key, mode 0600; the mesh id is its fingerprint), " +
    "this node's key (<dataDir>/node.key), the seed's certificate (ring 0, roles node, issuer, " +
    "admin) and a first operator key for ringctl on this machine (<dataDir>/operator.key, an " +
    "admin). " +
    SETTINGS_RECORDED +
    "\n\n" +
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
    const settings = await resolved(ctx);
    const cfg = { ...settings.config, ring: 0 as const };
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
      const configFile = await recordSettings(settings, 0);
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
    const tokenFile = ctx.values["join-token-file"];
    if (typeof tokenFile === "string") {
      const joined = await joinMesh(ctx, await resolved(ctx), () => readJoinTokenFile(tokenFile), "skip");
      if (joined !== undefined) ctx.info(joinedText(joined));
      // Used, or not needed: a token left behind is a secret lying about.
      await rm(tokenFile, { force: true });
    }
    // Read after a join: the ring is the one the certificate gave, recorded in ringd.json.
    return runDaemon(ctx, await config(ctx));
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
    "start' needs no token. Each endpoint of the token is asked up to three times, waiting 5, 10 " +
    "and 15 s for an answer (a busy issuer may take a while; it answers a repeated request once), " +
    "before the next is tried; exit 3 when none answered. " +
    SETTINGS_RECORDED +
    " With --start the node runs at once, as 'ringd start' would.",
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
    const settings = await resolved(ctx);
    const cfg = settings.config;
    // "refuse" mode never returns undefined: a directory in use is an AlreadyInitializedError.
    const joined = (await joinMesh(ctx, settings, async () => ctx.positionals[0]!.trim()))!;
    ctx.result(joined, () => joinedText(joined));
    if (ctx.values.start === true) return runDaemon(ctx, await config(ctx));
    ctx.info(`start it with: ringd start --data-dir ${cfg.dataDir}`);
    return ExitCode.Ok;
  },
};
