/**
 * Addresses of the ZeroMQ transport: `tcp://HOST:PORT/<64 hex ed25519 public key>`. The key part
 * lets a sender connect without a side channel: a CURVE client must know the server's key, and the
 * server's CURVE key is its ed25519 key converted. HOST is a name, an IPv4 address or a bracketed
 * IPv6 address. An address must fit a ZeroMQ routing id (at most 255 bytes), because each endpoint
 * uses its own address as the routing id of its outbound sockets: that is how receivers learn `from`.
 */
import { keyFromHex, keyHex } from "../../protocol/index.ts";

/** Longest address: ZeroMQ routing ids are 1..255 bytes. */
export const MAX_ZEROMQ_ADDRESS_BYTES = 255;

/** A parsed transport address. */
export interface ZeromqAddress {
  /** The ZeroMQ endpoint to connect to, `tcp://HOST:PORT`. */
  readonly endpoint: string;
  /** The listener's ed25519 public key. */
  readonly publicKey: Uint8Array;
  /** The same key as 64 lowercase hex chars. */
  readonly publicKeyHex: string;
}

/** A listen address is not `tcp://HOST:PORT` (or this node's own full address). */
export class InvalidListenAddressError extends Error {
  /** The refused address. */
  readonly address: string;
  constructor(address: string, options?: { cause?: unknown }) {
    super(`invalid zeromq listen address: ${JSON.stringify(address)}`, options);
    this.name = new.target.name;
    this.address = address;
  }
}

const ADDRESS = /^tcp:\/\/([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):(\d{1,5})\/([0-9a-f]{64})$/;
const ENDPOINT = /^tcp:\/\/([A-Za-z0-9.*-]+|\[[0-9A-Fa-f:.]+\]):(\d{1,5}|\*)$/;

/** Parse a transport address; undefined for anything that is not one (never throws). */
export function parseZeromqAddress(address: string): ZeromqAddress | undefined {
  if (address.length > MAX_ZEROMQ_ADDRESS_BYTES) return undefined;
  const m = ADDRESS.exec(address);
  if (m === null) return undefined;
  const port = Number(m[2]);
  if (port < 1 || port > 65_535) return undefined;
  const publicKeyHex = m[3]!;
  return { endpoint: `tcp://${m[1]}:${port}`, publicKey: keyFromHex(publicKeyHex), publicKeyHex };
}

/** The transport address of a listener at `tcp://host:port` holding `publicKey`. */
export function formatZeromqAddress(host: string, port: number, publicKey: Uint8Array): string {
  return `tcp://${host}:${port}/${keyHex(publicKey)}`;
}

/** A listen request split into host and port (0 = any free port). */
export interface ListenRequest {
  readonly host: string;
  readonly port: number;
}

/**
 * Parse what a node asks to listen on: `tcp://HOST:PORT`, `tcp://HOST:*` or `:0` for a free port,
 * or a full address of this node (so a restarted node can ask for the address it had). Throws
 * InvalidListenAddressError otherwise, or if the full address names another key.
 */
export function parseListen(listen: string, ownKeyHex: string): ListenRequest {
  const full = parseZeromqAddress(listen);
  const endpoint = full === undefined ? listen : full.endpoint;
  if (full !== undefined && full.publicKeyHex !== ownKeyHex) throw new InvalidListenAddressError(listen);
  const m = ENDPOINT.exec(endpoint);
  if (m === null) throw new InvalidListenAddressError(listen);
  const port = m[2] === "*" ? 0 : Number(m[2]);
  if (!(port >= 0 && port <= 65_535)) throw new InvalidListenAddressError(listen);
  return { host: m[1]!, port };
}

/** The port of a ZeroMQ `lastEndpoint` such as `tcp://127.0.0.1:40123`; undefined if none. */
export function portOfEndpoint(endpoint: string | null): number | undefined {
  const m = endpoint === null ? null : /:(\d+)$/.exec(endpoint);
  return m === null ? undefined : Number(m[1]);
}

/** The server or ZAP socket could not bind (address in use, bad host, ...). */
export class ZeromqBindError extends Error {
  /** The endpoint that failed. */
  readonly endpoint: string;
  constructor(endpoint: string, options?: { cause?: unknown }) {
    const code = (options?.cause as { code?: unknown } | undefined)?.code;
    const why =
      code === "EADDRINUSE"
        ? ": the address is already in use (another ringd or program listens there); choose another --listen port"
        : code === "EADDRNOTAVAIL"
          ? ": no interface of this machine has that address; choose another --listen host"
          : options?.cause instanceof Error
            ? `: ${options.cause.message}`
            : "";
    super(`zeromq transport could not bind ${endpoint}${why}`, options);
    this.name = new.target.name;
    this.endpoint = endpoint;
  }
}
