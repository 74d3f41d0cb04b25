/**
 * How a node comes to trust its mesh's nats-servers, on real nats-server processes: the issuer's
 * `peers` entries carry the URL and the certificate's sha256, and the certificate fetched from the
 * TLS handshake is kept only when its digest matches; a clustered server's reload adds and takes
 * out routes and trusted peers; a server dies with the process that supervises it; and with
 * `natsUrl` a node connects to an existing server and runs none of its own.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fingerprint, generateIdentity, issueCertificate, keyHex } from "../../protocol/index.ts";
import { eventually } from "../../test/support/eventually.ts";
import { InvalidNatsServerOptionError, type NatsServer, startNatsServer } from "../nats-server.ts";
import { NATS_CERT_FILE } from "../nats-server-files.ts";
import { openStore } from "../store/store.ts";
import { natsMemberPermissions } from "../transport/nats.ts";
import { MeshState } from "./mesh-state.ts";
import {
  certificateSha256,
  fetchPinnedNatsCa,
  memberNodeKeys,
  NATS_DATA_DIR,
  NatsCaFetchError,
  NatsCaFileError,
  NatsCaMismatchError,
  NatsLinkMissingError,
  natsJoinPeers,
  natsMeshToken,
  parseNatsJoinPeers,
  startNatsLink,
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

describe("a clustered server's routes, reloaded", () => {
  it("routes only once both sides trust each other, and a route taken out stays out", async () => {
    const dirA = await mkdtemp(join(tmpdir(), "enjc-route-a-"));
    const dirB = await mkdtemp(join(tmpdir(), "enjc-route-b-"));
    const servers: NatsServer[] = [];
    try {
      const a = await startNatsServer({
        dataDir: dirA,
        allowedKeys: [],
        serverName: "a",
        cluster: { trustedPeerCertPems: [] },
      });
      servers.push(a);
      const b = await startNatsServer({
        dataDir: dirB,
        allowedKeys: [],
        serverName: "b",
        cluster: { routes: [a.clusterUrl!], trustedPeerCertPems: [a.caPem] },
      });
      servers.push(b);
      // b dials a about once a second; a refuses a certificate it does not trust.
      await eventually(() => expect(b.logTail()).toMatch(/connect to route|Router connection closed/), {
        timeoutMs: 10_000,
      });
      expect(await a.routeCount()).toBe(0);
      await a.reload([], { routes: [b.clusterUrl!], trustedPeerCertPems: [b.caPem] });
      await eventually(
        async () => {
          expect(await a.routeCount()).toBe(1);
          expect(await b.routeCount()).toBe(1);
        },
        { timeoutMs: 15_000, intervalMs: 100 },
      );
      // Taken out of a's routes and trust (a revoked seed): the route closes, b's redials fail.
      await a.reload([], { routes: [], trustedPeerCertPems: [] });
      await eventually(async () => expect(await a.routeCount()).toBe(0), {
        timeoutMs: 15_000,
        intervalMs: 100,
      });
      const refusedBefore = (a.logTail().match(/TLS route handshake error/g) ?? []).length;
      await eventually(
        () => {
          const refused = (a.logTail().match(/TLS route handshake error/g) ?? []).length;
          expect(refused).toBeGreaterThanOrEqual(refusedBefore + 2);
        },
        { timeoutMs: 15_000, intervalMs: 100 },
      );
      expect(await a.routeCount()).toBe(0);
      expect(await readFile(join(dirA, "nats-routes-ca.pem"), "utf8")).toBe(a.caPem);
    } finally {
      for (const s of servers) await s.stop();
      await rm(dirA, { recursive: true, force: true });
      await rm(dirB, { recursive: true, force: true });
    }
  });

  it("refuses routes on a server started without a cluster", async () => {
    await expect(server.reload([], { routes: [], trustedPeerCertPems: [] })).rejects.toBeInstanceOf(
      InvalidNatsServerOptionError,
    );
  });

  it("dies with the process that supervises it, even one killed with SIGKILL", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "enjc-pdeath-"));
    try {
      const launcher = join(import.meta.dirname, "..", "nats-server.ts");
      const script = `import { startNatsServer } from ${JSON.stringify(launcher)};
const s = await startNatsServer({ dataDir: ${JSON.stringify(dataDir)}, allowedKeys: [] });
console.log(s.pid);
setInterval(() => {}, 1000);`;
      const child = execFile(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script]);
      const pid = await new Promise<number>((resolve, reject) => {
        child.stdout?.once("data", (d: Buffer) => resolve(Number.parseInt(d.toString(), 10)));
        child.once("exit", (code) => reject(new Error(`the launcher exited first (${code})`)));
      });
      expect((await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0")[0]).toMatch(/nats-server$/);
      child.kill("SIGKILL"); // no exit handler runs
      await eventually(
        async () => {
          const state = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "gone");
          expect(state === "gone" || / Z /.test(state)).toBe(true);
        },
        { timeoutMs: 10_000, intervalMs: 50 },
      );
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe("startNatsLink", () => {
  const log = pino({ level: "silent" });
  const identity = generateIdentity();
  const meshId = fingerprint(generateIdentity().publicKey);
  let dataDir: string;
  let state: MeshState;
  let store: Awaited<ReturnType<typeof openStore>>;
  const base = () => ({
    dataDir,
    identity,
    meshId,
    listenHost: "127.0.0.1",
    listenPort: 0,
    advertiseHost: "127.0.0.1",
    state,
    allowedKeys: () => [identity.publicKey],
    maxFrameBytes: 64 * 1024,
    log,
  });

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "enjc-link-"));
    store = await openStore(join(dataDir, "db"));
    state = new MeshState(store);
  });
  afterAll(async () => {
    await store?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it("with natsUrl, connects to that server with its CA file and runs none of its own", async () => {
    const existingDir = await mkdtemp(join(tmpdir(), "enjc-existing-"));
    const existing = await startNatsServer({
      dataDir: existingDir,
      allowedKeys: [identity.publicKey],
      permissions: natsMemberPermissions(natsMeshToken(meshId)),
    });
    try {
      const link = await startNatsLink({
        ...base(),
        mayServe: true,
        natsUrl: existing.url,
        natsCaFile: join(existingDir, NATS_CERT_FILE),
      });
      try {
        expect(link.serverUrl).toBeUndefined();
        expect(link.joinPeers).toEqual([existing.url]); // a URL, no pin: joiners need --nats-url too
        expect(parseNatsJoinPeers(link.joinPeers)).toBeUndefined();
        await expect(stat(join(dataDir, NATS_DATA_DIR))).rejects.toMatchObject({ code: "ENOENT" });
        const got: Uint8Array[] = [];
        link.transport.onFrame((_from, frame) => got.push(frame));
        expect(link.transport.send(link.transport.address, Uint8Array.of(7, 7))).toBeNull();
        await eventually(() => expect(got.map((f) => [...f])).toEqual([[7, 7]]));
        await link.refresh(); // nothing to reload: the server is its operator's
      } finally {
        await link.close();
      }
      const badCa = join(existingDir, "not-a-cert.pem");
      await writeFile(badCa, "hello");
      const external = { ...base(), mayServe: true, natsUrl: existing.url };
      await expect(startNatsLink({ ...external, natsCaFile: badCa })).rejects.toBeInstanceOf(NatsCaFileError);
      await expect(
        startNatsLink({ ...external, natsCaFile: join(existingDir, "none") }),
      ).rejects.toBeInstanceOf(NatsCaFileError);
      await expect(startNatsLink({ ...external, natsCaFile: null })).rejects.toBeInstanceOf(
        NatsLinkMissingError,
      );
    } finally {
      await existing.stop();
      await rm(existingDir, { recursive: true, force: true });
    }
  });

  it("without natsUrl or a stored link, a ring-1 node has no server, and neither has a seed without the root key", async () => {
    await expect(startNatsLink({ ...base(), mayServe: false })).rejects.toBeInstanceOf(NatsLinkMissingError);
    // A ring-0 node that joined a mesh on an existing cluster: refused, not left to serve alone.
    const err = await startNatsLink({ ...base(), mayServe: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NatsLinkMissingError);
    expect((err as Error).message).toContain("--nats-url");
    await expect(stat(join(dataDir, NATS_DATA_DIR))).rejects.toMatchObject({ code: "ENOENT" });
  });
});
