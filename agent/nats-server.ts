/**
 * A supervised `nats-server` (Debian's package): the launcher writes a config file into a data
 * directory, runs the server as a child process, waits until its monitoring port answers
 * `/healthz`, and kills it on stop() or when this process exits — on Linux even when this process
 * is killed with SIGKILL (SETPRIV_BINARY).
 *
 * What the generated config holds:
 * - clients on `host:port` (a free port on 127.0.0.1 unless given), TLS required, with a
 *   self-signed EC P-256 certificate made once by the `openssl` CLI and kept in the data dir
 *   (key file 0600); clients pin that certificate as their CA;
 * - nkey authentication only: each allowed user is a node's ed25519 public key as a `U...` nkey,
 *   optionally with publish/subscribe permissions.
 *   An empty allow-list would make nats-server open to anyone, so the list always also holds a
 *   throwaway key whose secret is discarded at once;
 * - `max_payload`, and an HTTP monitoring port on loopback (used for readiness and reloads);
 * - a server name, which must differ between the servers of one cluster;
 * - optionally a `cluster` block with routes to other servers, always over TLS: each side verifies
 *   the other's certificate against `trustedPeerCertPems`, so only known servers join.
 *
 * reload() rewrites the config and sends SIGHUP: nats-server re-reads it and closes the connection
 * of every user no longer in the list (transport/nats.integ.ts shows it on 2.9.10). A clustered
 * server's reload may also replace its routes and trusted peer certificates: nats-server 2.9 dials
 * added routes, closes the route of a URL taken out, and checks every new route handshake against
 * the rewritten CA file (an established route is not re-checked: take its URL out to close it;
 * node/nats-link.integ.ts shows both). No module-level state: many servers may run from one process.
 */
import { spawn } from "node:child_process";
import { constants } from "node:fs";
import { access, readFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join, resolve } from "node:path";
import { generateIdentity } from "../protocol/index.ts";
import {
  ensureNatsCertificate,
  hostPort,
  NATS_CERT_FILE,
  NATS_CONFIG_FILE,
  NATS_KEY_FILE,
  NATS_PID_FILE,
  NATS_ROUTES_CA_FILE,
  type NatsConfigInput,
  type NatsUserPermissions,
  renderNatsConfig,
  writeFileAtomic,
} from "./nats-server-files.ts";
import { userNkey } from "./transport/nkey.ts";

/**
 * util-linux's setpriv: where present, the server is started through `setpriv --pdeathsig KILL`, so
 * that it dies with the process that supervises it even when that one is killed with SIGKILL (a
 * server left running would keep an allow-list that nobody updates any more).
 */
export const SETPRIV_BINARY = "/usr/bin/setpriv";
/** Where Debian's `nats-server` package installs the binary. */
export const DEFAULT_NATS_SERVER_BINARY = "/usr/sbin/nats-server";
/** Default server `max_payload`: a 256 KiB frame plus 4 KiB for NATS headers. */
export const DEFAULT_NATS_MAX_PAYLOAD_BYTES = 256 * 1024 + 4 * 1024;
/** Default wait for `/healthz` to answer after spawning, and for a reload to take. */
export const DEFAULT_NATS_READY_TIMEOUT_MS = 10_000;
/** How often readiness and reloads are polled. */
export const NATS_POLL_INTERVAL_MS = 20;
/** How much of the server's stderr is kept for error messages (the newest bytes). */
export const NATS_STDERR_TAIL_BYTES = 16 * 1024;
/** How long stop() waits after SIGTERM before SIGKILL. */
export const NATS_STOP_GRACE_MS = 5_000;

/** What nats-server (2.9) logs when it keeps its old config after a SIGHUP. */
const RELOAD_FAILED_LOG = "Failed to reload server configuration";

/** The launcher's options are invalid (bad port, empty data dir, ...). */
export class InvalidNatsServerOptionError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** nats-server did not become ready; `stderr` is the tail of what it wrote. */
export class NatsServerStartError extends Error {
  /** The newest NATS_STDERR_TAIL_BYTES of the server's stderr. */
  readonly stderr: string;
  constructor(message: string, stderr: string, options?: { cause?: unknown }) {
    super(`${message}\n--- nats-server stderr (tail) ---\n${stderr}`, options);
    this.name = new.target.name;
    this.stderr = stderr;
  }
}

/** nats-server did not apply a reloaded config; `stderr` holds what it wrote since SIGHUP. */
export class NatsServerReloadError extends Error {
  /** What the server wrote to stderr after the SIGHUP. */
  readonly stderr: string;
  constructor(message: string, stderr: string, options?: { cause?: unknown }) {
    super(`${message}\n--- nats-server stderr since reload ---\n${stderr}`, options);
    this.name = new.target.name;
    this.stderr = stderr;
  }
}

/** reload() was called on a server that is stopped or has exited. */
export class NatsServerStoppedError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Clustering options: this server's route listener and the routes it dials. */
export interface NatsClusterOptions {
  /** Cluster name; every server of one cluster uses the same (default "enjin"). */
  readonly name?: string;
  /** Route listener host (default: the server's host). */
  readonly host?: string;
  /** Route listener port (default: a free port). */
  readonly port?: number;
  /** Route URLs of other servers, `nats-route://host:port`. */
  readonly routes?: readonly string[];
  /**
   * PEM certificates of the peer servers (their `caPem`). Routes always run TLS with this server's
   * certificate, and a route is accepted or dialed only to a server presenting one of these (or
   * this server's own certificate).
   */
  readonly trustedPeerCertPems: readonly string[];
}

/** The routes a clustered server dials and the peer certificates it accepts, as reload() takes them. */
export interface NatsRouteSet {
  /** Route URLs of other servers, `nats-route://host:port`. */
  readonly routes: readonly string[];
  /** PEM certificates of the peer servers (see NatsClusterOptions.trustedPeerCertPems). */
  readonly trustedPeerCertPems: readonly string[];
}

/** Options of startNatsServer(). */
export interface NatsServerOptions {
  /** Directory for the config, certificate and key (made 0700 if missing; the cert is reused). */
  readonly dataDir: string;
  /** ed25519 public keys (32 bytes) allowed to connect. */
  readonly allowedKeys: readonly Uint8Array[];
  /**
   * What each allowed key may publish and subscribe to, applied at start and on every reload
   * (e.g. the NATS transport's `natsMemberPermissions`). Without it, members may use any subject.
   */
  readonly permissions?: (publicKey: Uint8Array) => NatsUserPermissions;
  /** Client listener host (default 127.0.0.1). */
  readonly host?: string;
  /** Client listener port (default: a free port). */
  readonly port?: number;
  /** Monitoring (HTTP) port on loopback (default: a free port). */
  readonly monitorPort?: number;
  /** Server `max_payload` (default DEFAULT_NATS_MAX_PAYLOAD_BYTES). */
  readonly maxPayloadBytes?: number;
  /** Extra host names or IPs for the certificate (127.0.0.1, localhost and `host` are always in). */
  readonly tlsNames?: readonly string[];
  /**
   * The host clients and other servers are told to reach this server at (`client_advertise` and
   * the cluster's `advertise`; it is put in the certificate too). Default: nats-server's own choice
   * for the client side, and `host` for routes.
   */
  readonly advertiseHost?: string;
  /** Server name in logs and monitoring (default: "enjin-" + client port). */
  readonly serverName?: string;
  /** Join a cluster. */
  readonly cluster?: NatsClusterOptions;
  /** The nats-server binary (default DEFAULT_NATS_SERVER_BINARY). */
  readonly binary?: string;
  /** Readiness and reload timeout (default DEFAULT_NATS_READY_TIMEOUT_MS). */
  readonly readyTimeoutMs?: number;
}

/** A running nats-server. */
export interface NatsServer {
  /** Client URL (`nats://host:port`; TLS is required by the server). */
  readonly url: string;
  /** Client port. */
  readonly port: number;
  /** Monitoring (HTTP) port on loopback. */
  readonly monitorPort: number;
  /** Route port, when clustered. */
  readonly clusterPort?: number;
  /** Route URL other servers dial, when clustered. */
  readonly clusterUrl?: string;
  /** The server's certificate (PEM), which clients pin as their CA. */
  readonly caPem: string;
  /** Process id of the child. */
  readonly pid: number;
  /**
   * Replace the allowed keys and, on a clustered server, the routes and the trusted peer
   * certificates (kept as they are when `routes` is absent); resolves once the server has applied
   * the new config. `routes` on a server started without `cluster` is an
   * InvalidNatsServerOptionError.
   */
  reload(allowedKeys: readonly Uint8Array[], routes?: NatsRouteSet): Promise<void>;
  /** The newest NATS_STDERR_TAIL_BYTES of the server's log (stderr), for diagnostics. */
  logTail(): string;
  /** Number of routes currently connected (from `/routez`). */
  routeCount(): Promise<number>;
  /** Stop the server (SIGTERM, then SIGKILL after NATS_STOP_GRACE_MS); idempotent. */
  stop(): Promise<void>;
}

function checkPort(name: string, port: number | undefined): void {
  if (port !== undefined && !(Number.isInteger(port) && port > 0 && port < 65_536)) {
    throw new InvalidNatsServerOptionError(`${name} must be an integer in 1..65535, got ${port}`);
  }
}

/** A port that was free on `host` a moment ago (bind to 0, read, close). */
async function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** The host a local client dials to reach a listener on `host`. */
function dialHost(host: string): string {
  if (host === "0.0.0.0") return "127.0.0.1";
  if (host === "::") return "::1";
  return host;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * One data dir, one server: if the pid file names a live nats-server running this data dir's
 * config (a launcher that died without its exit handler, e.g. SIGKILL), stop it — SIGTERM, then
 * SIGKILL after NATS_STOP_GRACE_MS. The command line is checked (Linux /proc) so that a pid reused
 * by another process is left alone; where /proc is missing, nothing is killed.
 */
async function stopStaleServer(pidPath: string, configPath: string): Promise<void> {
  let pid: number;
  let cmdline: string;
  try {
    pid = Number.parseInt(await readFile(pidPath, "utf8"), 10);
    if (!(Number.isInteger(pid) && pid > 1)) return;
    cmdline = (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0").join(" ");
  } catch {
    return;
  }
  if (!cmdline.includes("nats-server") || !cmdline.includes(configPath)) return;
  process.kill(pid, "SIGTERM");
  const deadline = Date.now() + NATS_STOP_GRACE_MS;
  while (processAlive(pid)) {
    if (Date.now() >= deadline) {
      process.kill(pid, "SIGKILL");
      break;
    }
    await new Promise((wake) => setTimeout(wake, NATS_POLL_INTERVAL_MS));
  }
}

/** Start a nats-server child and resolve once it answers `/healthz`. */
export async function startNatsServer(opts: NatsServerOptions): Promise<NatsServer> {
  if (opts.dataDir === "") throw new InvalidNatsServerOptionError("dataDir must not be empty");
  const dataDir = resolve(opts.dataDir); // absolute: it is matched against a process's command line
  checkPort("port", opts.port);
  checkPort("monitorPort", opts.monitorPort);
  checkPort("cluster.port", opts.cluster?.port);
  const maxPayloadBytes = opts.maxPayloadBytes ?? DEFAULT_NATS_MAX_PAYLOAD_BYTES;
  if (!(Number.isInteger(maxPayloadBytes) && maxPayloadBytes > 0)) {
    throw new InvalidNatsServerOptionError(
      `maxPayloadBytes must be a positive integer, got ${maxPayloadBytes}`,
    );
  }
  const readyTimeoutMs = opts.readyTimeoutMs ?? DEFAULT_NATS_READY_TIMEOUT_MS;
  const host = opts.host ?? "127.0.0.1";
  const advertiseHost = opts.advertiseHost;
  const caPem = await ensureNatsCertificate(dataDir, [
    host,
    ...(advertiseHost === undefined ? [] : [advertiseHost]),
    ...(opts.tlsNames ?? []),
  ]);
  const port = opts.port ?? (await freePort(host));
  const monitorPort = opts.monitorPort ?? (await freePort("127.0.0.1"));
  const clusterHost = opts.cluster?.host ?? host;
  const clusterPort =
    opts.cluster === undefined ? undefined : (opts.cluster.port ?? (await freePort(clusterHost)));

  let clusterConfig: NatsConfigInput["cluster"];
  const caPath = join(dataDir, NATS_ROUTES_CA_FILE);
  const writeRoutesCa = (peers: readonly string[]): Promise<void> =>
    writeFileAtomic(caPath, [caPem, ...peers].join("\n"));
  if (opts.cluster !== undefined && clusterPort !== undefined) {
    await writeRoutesCa(opts.cluster.trustedPeerCertPems);
    clusterConfig = {
      name: opts.cluster.name ?? "enjin",
      host: clusterHost,
      port: clusterPort,
      routes: opts.cluster.routes ?? [],
      caPath,
      ...(advertiseHost === undefined ? {} : { advertise: hostPort(advertiseHost, clusterPort) }),
    };
  }
  // An empty users list would turn authentication off; this key's secret is dropped at once.
  const nobody = userNkey(generateIdentity().publicKey);
  const configPath = join(dataDir, NATS_CONFIG_FILE);
  const configFor = (keys: readonly Uint8Array[]): string =>
    renderNatsConfig({
      serverName: opts.serverName ?? `enjin-${port}`,
      host,
      port,
      monitorPort,
      maxPayloadBytes,
      certPath: join(dataDir, NATS_CERT_FILE),
      keyPath: join(dataDir, NATS_KEY_FILE),
      pidPath: join(dataDir, NATS_PID_FILE),
      ...(advertiseHost === undefined ? {} : { clientAdvertise: hostPort(advertiseHost, port) }),
      users: [
        { nkey: nobody },
        ...keys.map((key) => {
          const permissions = opts.permissions?.(key);
          return permissions === undefined ? { nkey: userNkey(key) } : { nkey: userNkey(key), permissions };
        }),
      ],
      ...(clusterConfig === undefined ? {} : { cluster: clusterConfig }),
    });
  await writeFileAtomic(configPath, configFor(opts.allowedKeys));

  await stopStaleServer(join(dataDir, NATS_PID_FILE), configPath);
  const binary = opts.binary ?? DEFAULT_NATS_SERVER_BINARY;
  const dieWithUs = await access(SETPRIV_BINARY, constants.X_OK).then(
    () => true,
    () => false,
  );
  const child = dieWithUs
    ? spawn(SETPRIV_BINARY, ["--pdeathsig", "KILL", "--", binary, "-c", configPath], {
        stdio: ["ignore", "ignore", "pipe"],
      })
    : spawn(binary, ["-c", configPath], { stdio: ["ignore", "ignore", "pipe"] });
  let stderrTail = "";
  let stderrTotal = 0; // characters ever written, to find what came after a point
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (chunk: string) => {
    stderrTotal += chunk.length;
    stderrTail = (stderrTail + chunk).slice(-NATS_STDERR_TAIL_BYTES);
  });
  const since = (total: number): string =>
    stderrTail.slice(Math.max(0, stderrTail.length - (stderrTotal - total)));

  // Kill the child if this process exits first. Each server adds its own listener, and raises the
  // listener limit by one so that many servers in one process do not trip the leak warning.
  const killOnExit = (): void => {
    child.kill("SIGKILL");
  };
  let listening = true;
  const unlistenExit = (): void => {
    if (!listening) return;
    listening = false;
    process.removeListener("exit", killOnExit);
    const max = process.getMaxListeners();
    if (max > 0) process.setMaxListeners(max - 1);
  };
  const max = process.getMaxListeners();
  if (max > 0) process.setMaxListeners(max + 1);
  process.on("exit", killOnExit);
  let exitCode: number | null | undefined;
  let spawnError: Error | undefined;
  const exited = new Promise<void>((resolve) => {
    child.once("error", (err) => {
      spawnError = err;
      exitCode ??= null;
      resolve();
    });
    child.once("exit", (code, signal) => {
      exitCode = code ?? (signal === null ? null : -1);
      unlistenExit();
      resolve();
    });
  });
  const running = (): boolean => exitCode === undefined;

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (running()) {
        child.kill("SIGTERM");
        const grace = setTimeout(() => child.kill("SIGKILL"), NATS_STOP_GRACE_MS);
        await exited;
        clearTimeout(grace);
      }
      unlistenExit();
    })();
    return stopping;
  };

  const monitorBase = `http://127.0.0.1:${monitorPort}`;
  const monitorJson = async (path: string): Promise<Record<string, unknown>> => {
    const res = await fetch(`${monitorBase}${path}`);
    if (!res.ok) throw new Error(`GET ${path}: HTTP ${res.status}`);
    return (await res.json()) as Record<string, unknown>;
  };
  const pause = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, NATS_POLL_INTERVAL_MS));

  // Readiness: /healthz answers 200, or the child exits, or the deadline passes.
  const deadline = Date.now() + readyTimeoutMs;
  let lastError: unknown;
  for (;;) {
    if (!running()) {
      await stop();
      throw new NatsServerStartError(
        `nats-server exited before it was ready (exit ${exitCode})`,
        stderrTail,
        spawnError === undefined ? {} : { cause: spawnError },
      );
    }
    try {
      const res = await fetch(`${monitorBase}/healthz`);
      if (res.ok) break;
      lastError = new Error(`healthz: HTTP ${res.status}`);
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      await stop();
      throw new NatsServerStartError(`nats-server not ready after ${readyTimeoutMs} ms`, stderrTail, {
        cause: lastError,
      });
    }
    await pause();
  }

  let reloads: Promise<void> = Promise.resolve();
  const reloadOnce = async (keys: readonly Uint8Array[], routes: NatsRouteSet | undefined): Promise<void> => {
    if (!running() || stopping !== undefined) throw new NatsServerStoppedError("nats-server is not running");
    const before = (await monitorJson("/varz")).config_load_time;
    if (routes !== undefined && clusterConfig !== undefined) {
      clusterConfig = { ...clusterConfig, routes: [...routes.routes] };
      await writeRoutesCa(routes.trustedPeerCertPems);
    }
    await writeFileAtomic(configPath, configFor(keys));
    const mark = stderrTotal;
    child.kill("SIGHUP");
    const reloadDeadline = Date.now() + readyTimeoutMs;
    for (;;) {
      const written = since(mark);
      if (written.includes(RELOAD_FAILED_LOG)) {
        throw new NatsServerReloadError("nats-server refused the new config", written);
      }
      if (!running()) throw new NatsServerReloadError("nats-server exited during reload", written);
      try {
        if ((await monitorJson("/varz")).config_load_time !== before) return;
      } catch (err) {
        lastError = err;
      }
      if (Date.now() >= reloadDeadline) {
        throw new NatsServerReloadError(`config not reloaded after ${readyTimeoutMs} ms`, written, {
          cause: lastError,
        });
      }
      await pause();
    }
  };

  const url = `nats://${hostPort(dialHost(host), port)}`;
  return {
    url,
    port,
    monitorPort,
    caPem,
    pid: child.pid ?? -1,
    ...(clusterPort === undefined
      ? {}
      : {
          clusterPort,
          clusterUrl: `nats-route://${hostPort(advertiseHost ?? dialHost(clusterHost), clusterPort)}`,
        }),
    reload(allowedKeys, routes) {
      if (routes !== undefined && clusterConfig === undefined) {
        return Promise.reject(
          new InvalidNatsServerOptionError("routes given to reload() of a server started without cluster"),
        );
      }
      const next = reloads.then(() => reloadOnce(allowedKeys, routes));
      reloads = next.catch(() => {});
      return next;
    },
    logTail: () => stderrTail,
    async routeCount() {
      const routez = await monitorJson("/routez");
      return typeof routez.num_routes === "number" ? routez.num_routes : 0;
    },
    stop,
  };
}
