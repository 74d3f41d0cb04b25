import { spawn } from "node:child_process";
import { chmod, mkdtemp, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as v from "valibot";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { deriveTokenSealKey, TokenIssuer } from "../../bootstrap/index.ts";
import { fingerprint } from "../../protocol/index.ts";
import { CRASH_BATCH_KEYS } from "./crash-writer.integ-support.ts";
import {
  CorruptValueError,
  IdentityMismatchError,
  InvalidValueError,
  KeyFileCorruptError,
  KeyFilePermissionsError,
  StoreLockedError,
} from "./errors.ts";
import { loadOrCreateIdentity, NODE_KEY_FILE, readKeyFile } from "./key-file.ts";
import { type NodeStore, openStore } from "./store.ts";

const T0 = 1_800_000_000_000;
const member = v.strictObject({ addr: v.string(), incarnation: v.number() });

let dir: string;
const open: NodeStore[] = [];
async function openTracked(d = dir): Promise<NodeStore> {
  const s = await openStore(d);
  open.push(s);
  return s;
}
async function closeAll(): Promise<void> {
  for (const s of open.splice(0)) if (s.db.status === "open") await s.close();
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "enjin-store-"));
});
afterEach(async () => {
  await closeAll();
  await rm(dir, { recursive: true, force: true });
});

describe("NodeStore on LevelDB", () => {
  it("keeps values, identity and audit entries across a reopen", async () => {
    let store = await openTracked();
    const id = await store.loadIdentity(T0);
    await store.putJson("members", "m:a", { addr: "tcp://a:1", incarnation: 3 });
    const k1 = await store.appendAudit("token-created", { id: "ab" }, T0);
    const k2 = await store.appendAudit("token-created", { id: "cd" }, T0);
    await closeAll();

    store = await openTracked();
    expect(await store.getJson("members", "m:a", member)).toEqual({ addr: "tcp://a:1", incarnation: 3 });
    expect(await store.getJson("members", "m:zz", member)).toBeUndefined();
    const again = await store.loadIdentity(T0 + 5);
    expect(again.publicKey).toEqual(id.publicKey);
    expect(await store.identityRecord()).toMatchObject({
      fingerprint: fingerprint(id.publicKey),
      createdMs: T0,
    });
    // The audit counter carries on: same millisecond, no collision, still in order.
    const k3 = await store.appendAudit("token-redeemed", { id: "ab" }, T0);
    expect([k1, k2, k3]).toEqual([k1, k2, k3].slice().sort());
    expect(new Set([k1, k2, k3]).size).toBe(3);
    expect((await store.audit.read(T0)).map((e) => e.kind)).toEqual([
      "token-created",
      "token-created",
      "token-redeemed",
    ]);
    // The private key never enters the database.
    const everything = JSON.stringify(await store.db.iterator().all());
    expect(everything).not.toContain(Buffer.from(id.secretKey.subarray(0, 32)).toString("base64url"));
    expect(everything).not.toContain(Buffer.from(id.secretKey.subarray(0, 32)).toString("hex"));
  });

  it("refuses a second open of the same directory with a named error", async () => {
    await openTracked();
    await expect(openStore(dir)).rejects.toThrow(StoreLockedError);
  });

  it("reports a corrupt value as CorruptValueError naming where it is", async () => {
    const store = await openTracked();
    await store.sublevel("members").put("m:bad", "{not json");
    await store.sublevel("members").put("m:wrong", JSON.stringify({ addr: 7 }));
    await expect(store.getJson("members", "m:bad", member)).rejects.toThrow(CorruptValueError);
    await expect(store.getJson("members", "m:wrong", member)).rejects.toThrow(/members\/m:wrong/);
    await expect(store.listJson("members", "m:", member)).rejects.toThrow(CorruptValueError);
  });
});

describe("node.key", () => {
  it("is created with mode 0600 (even under umask 0) in a 0700 directory, and loads back", async () => {
    const keyDir = join(dir, "state");
    const old = process.umask(0);
    let id: Awaited<ReturnType<typeof loadOrCreateIdentity>>;
    try {
      id = await loadOrCreateIdentity(keyDir);
    } finally {
      process.umask(old);
    }
    expect((await stat(join(keyDir, NODE_KEY_FILE))).mode & 0o777).toBe(0o600);
    expect((await stat(keyDir)).mode & 0o777).toBe(0o700);
    expect((await loadOrCreateIdentity(keyDir)).publicKey).toEqual(id.publicKey);
  });

  it("gives every racer the same key when several create it at once", async () => {
    const ids = await Promise.all(Array.from({ length: 8 }, () => loadOrCreateIdentity(dir)));
    for (const id of ids) expect(id.publicKey).toEqual(ids[0]!.publicKey);
  });

  it("refuses a key file readable by group or others, naming the file and the chmod fix", async () => {
    await loadOrCreateIdentity(dir);
    const path = join(dir, NODE_KEY_FILE);
    for (const mode of [0o644, 0o640, 0o604, 0o660]) {
      await chmod(path, mode);
      const err = await loadOrCreateIdentity(dir).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(KeyFilePermissionsError);
      expect((err as Error).name).toBe("KeyFilePermissionsError");
      expect((err as Error).message).toContain(path);
      expect((err as Error).message).toContain(`chmod 600 ${path}`);
    }
    await chmod(path, 0o600);
    expect(await readKeyFile(path)).toBeDefined();
  });

  it("refuses a corrupt key file and a symlinked one, and never overwrites either", async () => {
    const path = join(dir, NODE_KEY_FILE);
    await writeFile(path, "enjin-node-key-v1 ed25519-seed tooshort\n", { mode: 0o600 });
    await expect(loadOrCreateIdentity(dir)).rejects.toThrow(KeyFileCorruptError);
    await rm(path);
    await writeFile(path, "x".repeat(10_000), { mode: 0o600 });
    await expect(loadOrCreateIdentity(dir)).rejects.toThrow(KeyFileCorruptError);
    await rm(path);
    const elsewhere = join(dir, "elsewhere");
    await loadOrCreateIdentity(elsewhere);
    await symlink(join(elsewhere, NODE_KEY_FILE), path);
    await expect(loadOrCreateIdentity(dir)).rejects.toThrow(KeyFileCorruptError);
  });

  it("refuses a key file that is not the one the database recorded", async () => {
    let store = await openTracked();
    await store.loadIdentity(T0);
    await closeAll();
    await rm(join(dir, NODE_KEY_FILE));
    await loadOrCreateIdentity(dir); // a different key, as if the file had been swapped
    store = await openTracked();
    await expect(store.loadIdentity(T0)).rejects.toThrow(IdentityMismatchError);
  });
});

describe("batches", () => {
  it("write nothing when any operation is refused", async () => {
    const store = await openTracked();
    const good = { type: "put" as const, sublevel: "members" as const, key: "m:1", value: { a: 1 } };
    const cases = [
      [good, { type: "put" as const, sublevel: "trust" as const, key: "t:1", value: { n: 10n } }],
      [good, { type: "put" as const, sublevel: "trust" as const, key: "bad key", value: 1 }],
      [good, { type: "put" as const, sublevel: "trust" as const, key: "t:2", value: "x".repeat(70_000) }],
      [good, { type: "del" as const, sublevel: "nope" as "trust", key: "t:3" }],
    ];
    for (const ops of cases) await expect(store.batch(ops)).rejects.toThrow(InvalidValueError);
    expect(await store.db.iterator().all()).toEqual([]);
    // And a batch the database itself refuses (closed under it) leaves nothing either.
    await store.close();
    await expect(store.batch([good])).rejects.toThrow();
    const reopened = await openTracked();
    expect(await reopened.db.iterator().all()).toEqual([]);
    await reopened.batch([good, { type: "put", sublevel: "trust", key: "t:1", value: 2 }]);
    expect(await reopened.db.keys().all()).toEqual(["!members!m:1", "!trust!t:1"]);
  });

  it("are whole or absent after the writer is killed mid-stream (SIGKILL)", async () => {
    const child = spawn(
      process.execPath,
      ["--import", "tsx", join(import.meta.dirname, "crash-writer.integ-support.ts"), dir],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    let written = -1;
    await new Promise<void>((resolve, reject) => {
      child.on("error", reject);
      child.on("exit", (code) => (code !== null ? reject(new Error(`writer exited ${code}`)) : resolve()));
      child.stdout!.on("data", (chunk: Buffer) => {
        const lines = chunk.toString().trim().split("\n");
        written = Number(lines[lines.length - 1]);
        if (written >= 30) child.kill("SIGKILL");
      });
    });
    const store = await openTracked();
    const counts = new Map<string, number>();
    for await (const key of store.sublevel("members").keys()) {
      const batch = key.slice(0, key.indexOf(":"));
      counts.set(batch, (counts.get(batch) ?? 0) + 1);
    }
    expect(counts.size).toBeGreaterThanOrEqual(written + 1); // every acknowledged batch survived
    for (const n of counts.values()) expect(n).toBe(CRASH_BATCH_KEYS);
  });
});

describe("command seen-set", () => {
  const id = new Uint8Array(16).fill(7);

  it("says false for a command already seen, across a reopen, until pruned at expiry", async () => {
    let store = await openTracked();
    expect(await store.markCommandSeen(id, T0 + 1000)).toBe(true);
    expect(await store.markCommandSeen(id, T0 + 1000)).toBe(false);
    expect(await store.markCommandSeen("aa".repeat(16), T0 + 5000)).toBe(true);
    await closeAll();

    store = await openTracked();
    expect(await store.markCommandSeen(id, T0 + 1000)).toBe(false);
    expect(await store.pruneExpired(T0 + 999)).toBe(0);
    expect(await store.markCommandSeen(id, T0 + 1000)).toBe(false);
    expect(await store.pruneExpired(T0 + 1000)).toBe(1);
    expect(await store.commands.has(id)).toBe(false);
    expect(await store.commands.has("aa".repeat(16))).toBe(true);
    await closeAll();

    store = await openTracked();
    expect(await store.commands.has(id)).toBe(false);
    expect(await store.pruneExpired(T0 + 10_000)).toBe(1);
    expect(await store.sublevel("commands").keys().all()).toEqual([]);
  });

  it("lets exactly one of many racing marks of one id win", async () => {
    const store = await openTracked();
    const results = await Promise.all(Array.from({ length: 25 }, () => store.markCommandSeen(id, T0 + 1)));
    expect(results.filter(Boolean)).toHaveLength(1);
  });

  it("prunes in batches and refuses bad ids", async () => {
    const store = await openTracked();
    for (let i = 0; i < 2500; i++)
      await store.markCommandSeen(i.toString(16).padStart(8, "0"), T0 + (i % 10));
    expect(await store.pruneExpired(T0 + 4)).toBe(1250);
    expect(await store.pruneExpired(T0 + 9)).toBe(1250);
    await expect(store.markCommandSeen("XYZ", T0)).rejects.toThrow(InvalidValueError);
    await expect(store.markCommandSeen(new Uint8Array(65), T0)).rejects.toThrow(InvalidValueError);
  });
});

describe("tokens through the node store", () => {
  it("backs a TokenIssuer with the tokens sublevel", async () => {
    const store = await openTracked();
    const id = await store.loadIdentity(T0);
    const issuer = new TokenIssuer({
      store: store.tokens,
      issuerKey: id.publicKey,
      endpoints: ["tcp://127.0.0.1:4100"],
      sealKey: deriveTokenSealKey(id.secretKey),
    });
    const { info } = await issuer.create({ ring: 1, tiers: [], compartment: [], ttlMs: 60_000, uses: 2 }, T0);
    await closeAll();
    const reopened = await openTracked();
    expect((await reopened.tokens.listTokens()).map((t) => t.id)).toEqual([info.id]);
  });
});
