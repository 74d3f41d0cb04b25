/**
 * How a node comes to trust a nats-server's certificate: by the digest its issuer signed (the
 * server's certificate fetched from the TLS handshake, kept only when its sha256 matches), or, for
 * an existing NATS cluster named by `--nats-url`, from a CA file the operator gives.
 */
import { createHash, X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import { connect as tcpConnect } from "node:net";
import { connect as tlsConnect } from "node:tls";

/** How long fetching the server's certificate may take. */
export const NATS_CA_FETCH_TIMEOUT_MS = 5_000;
/** Longest INFO line read before the TLS upgrade when fetching the certificate. */
export const MAX_NATS_INFO_BYTES = 64 * 1024;
/** Largest CA file read for `--nats-ca-file`. */
export const MAX_NATS_CA_FILE_BYTES = 1024 * 1024;

/** The certificate the server presented is not the one the issuer's JoinResponse named. */
export class NatsCaMismatchError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The server's certificate could not be fetched (unreachable, no TLS, timeout). */
export class NatsCaFetchError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The CA file given for an existing NATS server is unreadable, too large, or holds no certificate. */
export class NatsCaFileError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * Fetch the certificate a nats-server presents at `url` and return it as PEM if its sha256 is
 * `caSha256`. The server speaks first (a plaintext INFO line), then the connection turns TLS; no
 * credential is sent, and the certificate is trusted only through the digest.
 */
export async function fetchPinnedNatsCa(url: string, caSha256: string): Promise<string> {
  const { hostname, port } = new URL(url);
  const host = hostname.replace(/^\[|\]$/g, "");
  const raw = await new Promise<Buffer>((resolve, reject) => {
    const socket = tcpConnect({ host, port: Number(port) || 4222 });
    const fail = (err: unknown) => {
      socket.destroy();
      reject(new NatsCaFetchError(`could not fetch the certificate of ${url}`, { cause: err }));
    };
    const timer = setTimeout(() => fail(new Error("timed out")), NATS_CA_FETCH_TIMEOUT_MS);
    let info = "";
    const onData = (chunk: Buffer) => {
      info += chunk.toString("latin1");
      if (info.length > MAX_NATS_INFO_BYTES) return fail(new Error("no INFO line"));
      if (!info.includes("\r\n")) return;
      socket.off("data", onData);
      socket.pause();
      const secure = tlsConnect({ socket, rejectUnauthorized: false }, () => {
        const der = secure.getPeerCertificate().raw;
        clearTimeout(timer);
        secure.destroy();
        resolve(der);
      });
      secure.once("error", (err) => {
        clearTimeout(timer);
        fail(err);
      });
    };
    socket.on("data", onData);
    socket.once("error", (err) => {
      clearTimeout(timer);
      fail(err);
    });
  });
  const got = createHash("sha256").update(raw).digest("hex");
  if (got !== caSha256) {
    throw new NatsCaMismatchError(
      `the nats-server at ${url} presents certificate sha256 ${got}, but the issuer named ${caSha256}`,
    );
  }
  return new X509Certificate(raw).toString();
}

/** The PEM text of an operator's CA file, checked to hold at least one certificate. */
export async function readNatsCaFile(path: string): Promise<string> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new NatsCaFileError(`cannot read the NATS CA file ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (bytes.byteLength > MAX_NATS_CA_FILE_BYTES)
    throw new NatsCaFileError(
      `the NATS CA file ${path} has ${bytes.byteLength} bytes; MAX_NATS_CA_FILE_BYTES is ${MAX_NATS_CA_FILE_BYTES}`,
    );
  const pem = bytes.toString("utf8");
  try {
    new X509Certificate(pem); // the first certificate of the file
  } catch (err) {
    throw new NatsCaFileError(`the NATS CA file ${path} holds no PEM certificate`, { cause: err });
  }
  return pem;
}
