/**
 * How a joined node comes to trust its mesh's nats-server: the issuer's `peers` entries carry the
 * URL and the certificate's sha256, and the certificate fetched from a real nats-server's TLS
 * handshake is kept only when its digest matches.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateIdentity, issueCertificate, keyHex } from "../../protocol/index.ts";
import { type NatsServer, startNatsServer } from "../nats-server.ts";
import {
  certificateSha256,
  fetchPinnedNatsCa,
  memberNodeKeys,
  NatsCaFetchError,
  NatsCaMismatchError,
  natsJoinPeers,
  natsMeshToken,
  parseNatsJoinPeers,
} from "./nats-link.ts";

let dir: string;
let server: NatsServer;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "enjin-nats-link-"));
  server = await startNatsServer({ dataDir: dir, allowedKeys: [] });
});

afterAll(async () => {
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe("the NATS link a JoinResponse hands out", () => {
  it("round-trips through peers, and a ZeroMQ peers list holds none", () => {
    const link = { url: "nats://10.0.0.1:7472", caSha256: "ab".repeat(32) };
    expect(parseNatsJoinPeers(natsJoinPeers(link))).toEqual(link);
    expect(parseNatsJoinPeers(["tcp://127.0.0.1:7470/abcd"])).toBeUndefined();
    expect(parseNatsJoinPeers(["nats://x:1", "nats-ca-sha256:short"])).toBeUndefined();
  });

  it("makes the mesh id a subject token", () => {
    expect(natsMeshToken("ed25519:cx32qzpswsgm")).toBe("cx32qzpswsgm");
  });

  it("fetches the server's certificate when its digest is the pinned one, and refuses another", async () => {
    const pin = certificateSha256(server.caPem);
    const pem = await fetchPinnedNatsCa(server.url, pin);
    expect(certificateSha256(pem)).toBe(pin);
    await expect(fetchPinnedNatsCa(server.url, "00".repeat(32))).rejects.toBeInstanceOf(NatsCaMismatchError);
  });

  it("says so when nothing listens", async () => {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r)); // a port that was just free: the connection is refused
    const closed = `nats://127.0.0.1:${port}`;
    await expect(fetchPinnedNatsCa(closed, "00".repeat(32))).rejects.toBeInstanceOf(NatsCaFetchError);
  });

  it("admits node keys that pass the trust check, never operators", () => {
    const root = generateIdentity();
    const cert = (subject: Uint8Array, roles: ("node" | "admin")[]) =>
      issueCertificate(root, {
        subject,
        issuer: root.publicKey,
        ring: 0,
        roles,
        compartment: [],
        tiers: [],
        serial: 1,
        notBeforeMs: 0,
        expiresMs: Date.now() + 60_000,
      });
    const [a, b, op] = [generateIdentity(), generateIdentity(), generateIdentity()];
    const certificates = new Map([
      [keyHex(a.publicKey), cert(a.publicKey, ["node"])],
      [keyHex(b.publicKey), cert(b.publicKey, ["node"])],
      [keyHex(op.publicKey), cert(op.publicKey, ["admin"])],
    ]);
    const keys = memberNodeKeys(certificates, (hex) => hex !== keyHex(b.publicKey));
    expect(keys.map(keyHex)).toEqual([keyHex(a.publicKey)]);
  });
});
