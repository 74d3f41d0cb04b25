/**
 * The files of a supervised nats-server, apart from the process: the self-signed TLS certificate
 * (made by the openssl CLI, key 0600) and the generated config. Pure text and file work; the
 * launcher (nats-server.ts) decides what goes in.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, mkdir, open, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { isIP } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";

/** Validity of the self-signed certificate. */
export const NATS_CERT_VALIDITY_DAYS = 3650;
/** Random bytes in the certificate's common name, so that each server's certificate is told apart. */
const CERT_NAME_RANDOM_BYTES = 8;
/** The generated config file, in the data dir (as are the files below). */
export const NATS_CONFIG_FILE = "nats-server.conf";
/** The PEM certificate clients pin as their CA. */
export const NATS_CERT_FILE = "nats-cert.pem";
/** The PEM private key of the certificate (0600). */
export const NATS_KEY_FILE = "nats-key.pem";
/** The server's pid, written by nats-server itself, to find a server a crashed launcher left. */
export const NATS_PID_FILE = "nats-server.pid";
/** Certificates a clustered server accepts on routes (its own and its peers'). */
export const NATS_ROUTES_CA_FILE = "nats-routes-ca.pem";

/** `openssl` failed to make the TLS certificate. */
export class NatsCertificateError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Subjects one user may publish to and subscribe to (NATS wildcards allowed); all else is denied. */
export interface NatsUserPermissions {
  /** Subjects the user may publish to. */
  readonly publish: readonly string[];
  /** Subjects the user may subscribe to. */
  readonly subscribe: readonly string[];
}

const execFileAsync = promisify(execFile);

/** `host:port`, with an IPv6 host in brackets. */
export function hostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Make (once) the self-signed certificate and 0600 key in `dataDir`, and return the certificate
 * PEM. An existing pair is kept as it is, so clients that pinned it keep working after a restart.
 */
export async function ensureNatsCertificate(dataDir: string, names: readonly string[] = []): Promise<string> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const certPath = join(dataDir, NATS_CERT_FILE);
  const keyPath = join(dataDir, NATS_KEY_FILE);
  if (!((await exists(certPath)) && (await exists(keyPath)))) {
    const sans = new Set(["IP:127.0.0.1", "DNS:localhost"]);
    for (const name of names) {
      if (name === "" || name === "0.0.0.0" || name === "::") continue;
      sans.add(isIP(name) === 0 ? `DNS:${name}` : `IP:${name}`);
    }
    const keyTmp = `${keyPath}.tmp`;
    const certTmp = `${certPath}.tmp`;
    await (await open(keyTmp, "w", 0o600)).close(); // openssl keeps the mode of an existing file
    try {
      await execFileAsync("openssl", [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        keyTmp,
        "-out",
        certTmp,
        "-days",
        String(NATS_CERT_VALIDITY_DAYS),
        "-subj",
        `/CN=enjin-nats-${randomBytes(CERT_NAME_RANDOM_BYTES).toString("hex")}`,
        "-addext",
        `subjectAltName=${[...sans].join(",")}`,
      ]);
    } catch (err) {
      await rm(keyTmp, { force: true });
      await rm(certTmp, { force: true });
      throw new NatsCertificateError(`openssl could not make the NATS certificate in ${dataDir}`, {
        cause: err,
      });
    }
    await chmod(keyTmp, 0o600);
    await rename(keyTmp, keyPath);
    await rename(certTmp, certPath);
  }
  return readFile(certPath, "utf8");
}

/** Everything the generated config says. */
export interface NatsConfigInput {
  readonly serverName: string;
  readonly host: string;
  readonly port: number;
  readonly monitorPort: number;
  readonly maxPayloadBytes: number;
  readonly certPath: string;
  readonly keyPath: string;
  readonly pidPath: string;
  /** `host:port` clients are told to reach this server at (its cluster peers gossip it to them). */
  readonly clientAdvertise?: string;
  readonly users: ReadonlyArray<{ readonly nkey: string; readonly permissions?: NatsUserPermissions }>;
  readonly cluster?: {
    readonly name: string;
    readonly host: string;
    readonly port: number;
    readonly routes: readonly string[];
    readonly caPath: string;
    /** `host:port` other servers are told to dial for a route to this one. */
    readonly advertise?: string;
  };
}

/**
 * A permission that allows exactly `subjects`. nats-server reads an empty allow-list as no
 * restriction at all, so "nothing" is written as a deny of every subject instead.
 */
function allowOnly(subjects: readonly string[]): string {
  return subjects.length === 0 ? '{ deny: [">"] }' : `{ allow: ${JSON.stringify(subjects)} }`;
}

/** The nats-server config text (strings quoted as JSON, which the config parser accepts). */
export function renderNatsConfig(c: NatsConfigInput): string {
  const q = JSON.stringify;
  const lines = [
    "# Written by enjin's launcher (agent/nats-server.ts); rewritten on every reload.",
    `server_name: ${q(c.serverName)}`,
    `listen: ${q(hostPort(c.host, c.port))}`,
    `http: ${q(hostPort("127.0.0.1", c.monitorPort))}`,
    `max_payload: ${c.maxPayloadBytes}`,
    `pid_file: ${q(c.pidPath)}`,
    ...(c.clientAdvertise === undefined ? [] : [`client_advertise: ${q(c.clientAdvertise)}`]),
    "tls {",
    `  cert_file: ${q(c.certPath)}`,
    `  key_file: ${q(c.keyPath)}`,
    "}",
    "authorization {",
    "  users: [",
    ...c.users.map(({ nkey, permissions: p }) =>
      p === undefined
        ? `    { nkey: ${q(nkey)} }`
        : `    { nkey: ${q(nkey)}, permissions: { publish: ${allowOnly(p.publish)}, subscribe: ${allowOnly(p.subscribe)} } }`,
    ),
    "  ]",
    "}",
  ];
  if (c.cluster !== undefined) {
    lines.push(
      "cluster {",
      `  name: ${q(c.cluster.name)}`,
      `  listen: ${q(hostPort(c.cluster.host, c.cluster.port))}`,
      ...(c.cluster.advertise === undefined ? [] : [`  advertise: ${q(c.cluster.advertise)}`]),
      `  routes: [${c.cluster.routes.map((r) => q(r)).join(", ")}]`,
      "  tls {",
      `    cert_file: ${q(c.certPath)}`,
      `    key_file: ${q(c.keyPath)}`,
      `    ca_file: ${q(c.cluster.caPath)}`,
      "  }",
      "}",
    );
  }
  return `${lines.join("\n")}\n`;
}

/** Write `text` to a temporary file (0600) and rename it over `path`. */
export async function writeFileAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp`;
  await writeFile(tmp, text, { mode: 0o600 });
  await rename(tmp, path);
}
