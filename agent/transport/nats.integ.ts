/**
 * The NATS transport against real nats-server processes (Debian's nats-server, openssl CLI):
 * the shared compliance suite, then authentication, revocation by reload, TLS-only access and
 * two clustered servers. Every server is stopped, and checked gone, before the file ends.
 */
import { mkdtemp, rm, stat } from "node:fs/promises";
import { connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as connectNats, headers, nkeyAuthenticator } from "nats";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { generateIdentity, type Identity } from "../../protocol/index.ts";
import { transportCompliance } from "../../test/compliance/transport-compliance.ts";
import { eventually } from "../../test/support/eventually.ts";
import {
  type NatsServer,
  type NatsServerOptions,
  NatsServerReloadError,
  NatsServerStartError,
  startNatsServer,
} from "../nats-server.ts";
import { ensureNatsCertificate, NATS_KEY_FILE } from "../nats-server-files.ts";
import {
  MAX_NATS_TOKEN_BYTES,
  NATS_FROM_HEADER,
  NatsAuthorizationError,
  NatsConnectError,
  NatsPermissionError,
  type NatsTransport,
  nats,
  natsMemberPermissions,
  natsSubject,
} from "./nats.ts";
import { userNkeySeed } from "./nkey.ts";

const MESH = "integmesh";
const WAIT = { timeoutMs: 15_000, intervalMs: 20 };

const dirs: string[] = [];
const servers: NatsServer[] = []; // started by a test, stopped after it
let shared: NatsServer | undefined; // the compliance run's server, stopped after the file

async function freshDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "enjin-nats-"));
  dirs.push(dir);
  return dir;
}

async function server(opts: Partial<NatsServerOptions> & { allowedKeys: readonly Uint8Array[] }) {
  const s = await startNatsServer({ dataDir: opts.dataDir ?? (await freshDir()), ...opts });
  servers.push(s);
  return s;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

afterAll(async () => {
  const all = shared === undefined ? servers : [shared, ...servers];
  await Promise.all(all.map((s) => s.stop()));
  for (const s of all) expect(alive(s.pid)).toBe(false);
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

// One server for the whole compliance run; each endpoint takes the next of a pool of allowed keys.
const POOL_SIZE = 64;
const pool = Array.from({ length: POOL_SIZE }, () => generateIdentity());
let nextIdentity = 0;

transportCompliance(
  "nats",
  async () => {
    shared ??= await startNatsServer({
      dataDir: await freshDir(),
      allowedKeys: pool.map((id) => id.publicKey),
    });
    const s = shared;
    return {
      make: () => {
        const identity = pool[nextIdentity++ % POOL_SIZE]!;
        return nats({ servers: s.url, caPem: s.caPem, identity, meshId: MESH })({});
      },
      teardown: async () => {},
    };
  },
  { timeoutMs: 15_000 },
);

describe("nats transport with a real nats-server", () => {
  const open: NatsTransport[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((t) => t.close()));
    const mine = servers.splice(0);
    await Promise.all(mine.map((s) => s.stop()));
    for (const s of mine) expect(alive(s.pid)).toBe(false);
  });

  const endpoint = async (s: NatsServer, identity: Identity) => {
    const t = await nats({ servers: s.url, caPem: s.caPem, identity, meshId: MESH, reconnectWaitMs: 100 })(
      {},
    );
    open.push(t);
    const inbox: Array<{ from: string; frame: Uint8Array }> = [];
    t.onFrame((from, frame) => inbox.push({ from, frame }));
    return { t, inbox };
  };

  it("keeps the TLS key 0600 and reuses the certificate on a restart", async () => {
    const dir = await freshDir();
    const first = await ensureNatsCertificate(dir);
    expect((await stat(join(dir, NATS_KEY_FILE))).mode & 0o777).toBe(0o600);
    expect(await ensureNatsCertificate(dir)).toBe(first);
  });

  it("stops a server that an earlier launcher left running on the same data dir", async () => {
    const dir = await freshDir();
    const first = await server({ dataDir: dir, allowedKeys: [] });
    const second = await server({ dataDir: dir, allowedKeys: [] });
    expect(second.pid).not.toBe(first.pid);
    await eventually(() => expect(alive(first.pid)).toBe(false), WAIT);
    expect(await second.routeCount()).toBe(0); // the new one answers
  });

  it("refuses a client whose nkey is not allowed, with NatsAuthorizationError", async () => {
    const member = generateIdentity();
    const s = await server({ allowedKeys: [member.publicKey] });
    await endpoint(s, member);
    const stranger = generateIdentity();
    const err = await endpoint(s, stranger).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NatsAuthorizationError);
    expect((err as Error).name).toBe("NatsAuthorizationError");
    expect((err as Error).cause).toBeDefined();
  });

  it("lets nobody in when the allow-list is empty", async () => {
    const s = await server({ allowedKeys: [] });
    await expect(endpoint(s, generateIdentity())).rejects.toBeInstanceOf(NatsAuthorizationError);
  });

  it("refuses a client that pins another server's certificate", async () => {
    const id = generateIdentity();
    const s = await server({ allowedKeys: [id.publicKey] });
    const other = await ensureNatsCertificate(await freshDir());
    const t = nats({ servers: s.url, caPem: other, identity: id, meshId: MESH, maxReconnectAttempts: 0 });
    const err = await t({}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NatsConnectError);
    expect(err).not.toBeInstanceOf(NatsAuthorizationError);
  });

  it("reload lets a new member in and cuts a removed one off", async () => {
    const [a, b, c] = [generateIdentity(), generateIdentity(), generateIdentity()];
    const s = await server({ allowedKeys: [a.publicKey, b.publicKey] });
    const ea = await endpoint(s, a);
    const eb = await endpoint(s, b);
    expect(ea.t.send(eb.t.address, Uint8Array.of(1))).toBeNull();
    await eventually(() => expect(eb.inbox).toHaveLength(1), WAIT);
    await expect(endpoint(s, c)).rejects.toBeInstanceOf(NatsAuthorizationError);

    const t0 = Date.now();
    await s.reload([a.publicKey, c.publicKey]);
    const reloadMs = Date.now() - t0;
    const ec = await endpoint(s, c); // let in
    await eventually(() => expect(eb.t.stats().disconnects).toBe(1), WAIT); // the server hung up
    const disconnectMs = Date.now() - t0;
    const cutOff = await eb.t.ended; // its reconnects were refused, and it gave up
    const cutOffMs = Date.now() - t0;
    expect(cutOff).toBeInstanceOf(NatsAuthorizationError);
    expect(eb.t.send(ea.t.address, Uint8Array.of(2))).toBe("closed");
    expect(eb.t.stats().disconnects).toBeGreaterThanOrEqual(1);
    expect(ea.t.send(ec.t.address, Uint8Array.of(3))).toBeNull();
    await eventually(() => expect(ec.inbox.map((r) => r.from)).toEqual([ea.t.address]), WAIT);
    // b cannot come back with its old key.
    await expect(endpoint(s, b)).rejects.toBeInstanceOf(NatsAuthorizationError);
    console.info(
      `nats reload: applied in ${reloadMs} ms; the revoked endpoint was disconnected after ${disconnectMs} ms and ended after ${cutOffMs} ms`,
    );
  });

  it("drops and counts inbound messages without a valid sender or over maxFrameBytes", async () => {
    const [a, raw] = [generateIdentity(), generateIdentity()];
    const s = await server({ allowedKeys: [a.publicKey, raw.publicKey] });
    const ea = await nats({ servers: s.url, caPem: s.caPem, identity: a, meshId: MESH, maxFrameBytes: 16 })(
      {},
    );
    open.push(ea);
    const inbox: Array<{ from: string; frame: Uint8Array }> = [];
    ea.onFrame((from, frame) => inbox.push({ from, frame }));
    // A member speaking NATS directly, not through the transport.
    const nc = await connectNats({
      servers: s.url,
      tls: { ca: s.caPem },
      authenticator: nkeyAuthenticator(userNkeySeed(raw.secretKey)),
    });
    try {
      const subject = natsSubject(MESH, ea.address);
      const withFrom = (from: string) => {
        const h = headers();
        h.set(NATS_FROM_HEADER, from);
        return { headers: h };
      };
      nc.publish(subject, Uint8Array.of(1)); // no header at all
      nc.publish(subject, Uint8Array.of(2), withFrom("a.b")); // not one token
      nc.publish(subject, Uint8Array.of(3), withFrom("x".repeat(MAX_NATS_TOKEN_BYTES + 1)));
      nc.publish(subject, new Uint8Array(17), withFrom("big")); // over this endpoint's limit
      nc.publish(subject, Uint8Array.of(5), withFrom("fine")); // sentinel
      await eventually(() => expect(inbox).toHaveLength(1), WAIT);
      expect(inbox[0]!.from).toBe("fine");
      expect(ea.stats().malformedByReason).toEqual({ "no-sender": 1, "bad-sender": 2, "too-large": 1 });
      expect(ea.stats().received).toBe(1);
    } finally {
      await nc.close();
    }
  });

  it("with member permissions, a node receives only at its own address and cannot listen to others", async () => {
    const [a, b] = [generateIdentity(), generateIdentity()];
    const s = await server({
      allowedKeys: [a.publicKey, b.publicKey],
      permissions: natsMemberPermissions(MESH),
    });
    const ea = await endpoint(s, a);
    const eb = await endpoint(s, b);
    expect(ea.t.send(eb.t.address, Uint8Array.of(1))).toBeNull();
    await eventually(() => expect(eb.inbox.map((r) => r.from)).toEqual([ea.t.address]), WAIT);
    // Taking another address than its key's is refused by the server.
    const squatter = nats({ servers: s.url, caPem: s.caPem, identity: b, meshId: MESH });
    const err = await squatter({ listen: ea.t.address }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NatsPermissionError);
    // So is listening to the whole mesh with a raw client.
    const nc = await connectNats({
      servers: s.url,
      tls: { ca: s.caPem },
      authenticator: nkeyAuthenticator(userNkeySeed(b.secretKey)),
    });
    try {
      let refused: unknown;
      nc.subscribe(natsSubject(MESH, "*"), { callback: (e) => (refused ??= e) });
      await nc.flush();
      expect(refused).toBeDefined();
      expect(String(refused)).toMatch(/permissions violation/i);
    } finally {
      await nc.close();
    }
  });

  it("a config the server refuses on reload fails with NatsServerReloadError and keeps the old one", async () => {
    const [a, b] = [generateIdentity(), generateIdentity()];
    let broken = false;
    const s = await server({
      allowedKeys: [a.publicKey, b.publicKey],
      permissions: (key) =>
        broken ? { publish: ["a..b"], subscribe: [] } : natsMemberPermissions(MESH)(key),
    });
    const ea = await endpoint(s, a);
    const eb = await endpoint(s, b);
    broken = true;
    const err = await s.reload([a.publicKey]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NatsServerReloadError);
    expect((err as NatsServerReloadError).stderr).toMatch(/not a valid subject/);
    expect(ea.t.send(eb.t.address, Uint8Array.of(1))).toBeNull(); // b is still a member
    await eventually(() => expect(eb.inbox).toHaveLength(1), WAIT);
    broken = false;
    await s.reload([a.publicKey]); // and a good reload still works afterwards
    expect(await eb.t.ended).toBeInstanceOf(NatsAuthorizationError);
  });

  it("an endpoint whose subscription a reload takes away ends with NatsPermissionError", async () => {
    const [a, b] = [generateIdentity(), generateIdentity()];
    let deafB = false;
    const member = natsMemberPermissions(MESH);
    const s = await server({
      allowedKeys: [a.publicKey, b.publicKey],
      permissions: (key) =>
        deafB && key === b.publicKey ? { publish: member(key).publish, subscribe: [] } : member(key),
    });
    await endpoint(s, a);
    const eb = await endpoint(s, b);
    deafB = true;
    await s.reload([a.publicKey, b.publicKey]);
    expect(await eb.t.ended).toBeInstanceOf(NatsPermissionError);
    expect(eb.t.send(eb.t.address, Uint8Array.of(1))).toBe("closed");
  });

  it("refuses a plaintext (non-TLS) client", async () => {
    const id = generateIdentity();
    const s = await server({ allowedKeys: [id.publicKey] });
    const socket = tcpConnect(s.port, "127.0.0.1");
    let text = "";
    let ended = false;
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      text += chunk;
      if (text.startsWith("INFO ") && text.includes("\r\n") && !text.includes("CONNECT-SENT")) {
        text += "CONNECT-SENT";
        socket.write('CONNECT {"verbose":false,"pedantic":false}\r\nPING\r\n');
      }
    });
    socket.on("close", () => {
      ended = true;
    });
    socket.on("error", () => {});
    await eventually(() => expect(ended).toBe(true), WAIT);
    const info = JSON.parse(text.slice("INFO ".length, text.indexOf("\r\n"))) as { tls_required?: boolean };
    expect(info.tls_required).toBe(true);
    expect(text).not.toContain("PONG");
  });

  it("reports a server that cannot start with NatsServerStartError and its stderr", async () => {
    const first = await server({ allowedKeys: [] });
    const err = await server({ allowedKeys: [], port: first.port }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NatsServerStartError);
    expect((err as NatsServerStartError).stderr).toMatch(/address already in use/i);
  });

  it("two clustered servers carry frames between endpoints on either, over TLS routes", async () => {
    const [x, y] = [generateIdentity(), generateIdentity()];
    const keys = [x.publicKey, y.publicKey];
    const [dirA, dirB] = [await freshDir(), await freshDir()];
    const [certA, certB] = [await ensureNatsCertificate(dirA), await ensureNatsCertificate(dirB)];
    const a = await server({ dataDir: dirA, allowedKeys: keys, cluster: { trustedPeerCertPems: [certB] } });
    const b = await server({
      dataDir: dirB,
      allowedKeys: keys,
      cluster: { routes: [a.clusterUrl!], trustedPeerCertPems: [certA] },
    });
    await eventually(async () => {
      expect(await a.routeCount()).toBe(1);
      expect(await b.routeCount()).toBe(1);
    }, WAIT);
    const ex = await endpoint(a, x);
    const ey = await endpoint(b, y);
    // Interest crosses the route a moment after subscribing: resend until one frame lands.
    await eventually(() => {
      ex.t.send(ey.t.address, Uint8Array.of(7, 7));
      expect(ey.inbox.length).toBeGreaterThan(0);
    }, WAIT);
    expect(ey.inbox[0]!.from).toBe(ex.t.address);
    expect(Array.from(ey.inbox[0]!.frame)).toEqual([7, 7]);
    await eventually(() => {
      ey.t.send(ex.t.address, Uint8Array.of(9));
      expect(ex.inbox.length).toBeGreaterThan(0);
    }, WAIT);
    expect(ex.inbox[0]!.from).toBe(ey.t.address);
  });

  it("refuses a route from a server whose certificate is not trusted", async () => {
    const [dirA, dirB] = [await freshDir(), await freshDir()];
    const stranger = await ensureNatsCertificate(await freshDir());
    const a = await server({ dataDir: dirA, allowedKeys: [], cluster: { trustedPeerCertPems: [stranger] } });
    const certA = await ensureNatsCertificate(dirA);
    const b = await server({
      dataDir: dirB,
      allowedKeys: [],
      cluster: { routes: [a.clusterUrl!], trustedPeerCertPems: [certA] },
    });
    // b trusts a, but a does not trust b: wait until a has refused b's route handshake.
    await eventually(() => expect(a.logTail()).toMatch(/TLS route handshake error/), WAIT);
    expect(await a.routeCount()).toBe(0);
    expect(await b.routeCount()).toBe(0);
  });
});
