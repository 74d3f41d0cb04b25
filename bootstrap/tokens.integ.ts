import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Level } from "level";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { generateIdentity, type JoinRequest } from "../protocol/index.ts";
import {
  BadJoinMacError,
  RateLimitedError,
  TokenExhaustedError,
  TokenExpiredError,
  TokenRecordCorruptError,
  TokenRevokedError,
  UnknownTokenError,
} from "./errors.ts";
import { makeJoinRequest } from "./joiner.ts";
import { decodeJoinToken } from "./token-codec.ts";
import { deriveTokenSealKey } from "./token-seal.ts";
import { levelTokenStore } from "./token-table.ts";
import { TokenIssuer, type TokenIssuerOptions } from "./tokens.ts";

const issuerId = generateIdentity(new Uint8Array(32).fill(1));
const scope = { ring: 1 as const, tiers: ["web"], compartment: ["eu", "dc1"] };
const HOUR_MS = 3_600_000;
const T0 = 1_800_000_000_000;

let dir: string;
let db: Level<string, string>;

async function openIssuer(extra: Partial<TokenIssuerOptions> = {}) {
  db = new Level<string, string>(join(dir, "db"));
  await db.open();
  const table = db.sublevel<string, string>("tokens", {});
  return new TokenIssuer({
    store: levelTokenStore(table),
    issuerKey: issuerId.publicKey,
    endpoints: ["tcp://10.0.0.1:4100"],
    sealKey: deriveTokenSealKey(issuerId.secretKey),
    ...extra,
  });
}

const joinerKey = (n: number) => generateIdentity(new Uint8Array(32).fill(n + 10)).publicKey;
const requestFor = (token: string, n: number, name = `node-${n}`): JoinRequest =>
  makeJoinRequest(decodeJoinToken(token), joinerKey(n), name);

/** Every key and value in the database, to show that a refusal changed nothing. */
async function dump(): Promise<string> {
  return JSON.stringify(await db.iterator().all());
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "enjin-tokens-"));
});
afterEach(async () => {
  await db?.close();
  await rm(dir, { recursive: true, force: true });
});

describe("TokenIssuer on LevelDB", () => {
  it("creates, redeems once, refuses reuse, and never stores the secret", async () => {
    const issuer = await openIssuer();
    const { token, info } = await issuer.create({ ...scope, ttlMs: HOUR_MS, uses: 1 }, T0);
    const secretHex = Buffer.from(decodeJoinToken(token).secret).toString("hex");
    const secretB64 = Buffer.from(decodeJoinToken(token).secret).toString("base64url");
    const stored = await dump();
    expect(stored).not.toContain(secretHex);
    expect(stored).not.toContain(secretB64);
    expect(info.usesLeft).toBe(1);

    const ok = await issuer.redeem(requestFor(token, 1), T0 + 1000, "10.0.0.9");
    expect(ok).toMatchObject({ tokenId: info.id, scope, usesLeft: 0, repeat: false, name: "node-1" });
    await expect(issuer.redeem(requestFor(token, 2), T0 + 2000)).rejects.toThrow(TokenExhaustedError);
    expect(issuer.counters.get("token-redeemed")).toBe(1);
    expect(issuer.counters.get("redeem-refused:token-exhausted")).toBe(1);
    // The same joiner key retrying (its answer was lost) is recognised, without another use.
    const again = await issuer.redeem(requestFor(token, 1), T0 + 3000);
    expect(again).toMatchObject({ repeat: true, usesLeft: 0 });
    expect((await issuer.list())[0]).toMatchObject({ id: info.id, usesLeft: 0, uses: 1 });
  });

  it("lets exactly 3 of 20 concurrent redemptions of a 3-use token succeed", async () => {
    const issuer = await openIssuer();
    const { token } = await issuer.create({ ...scope, ttlMs: HOUR_MS, uses: 3 }, T0);
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) => issuer.redeem(requestFor(token, i), T0 + 1, `src-${i}`)),
    );
    const ok = results.filter((r) => r.status === "fulfilled");
    const refused = results.filter((r) => r.status === "rejected");
    expect(ok).toHaveLength(3);
    for (const r of refused) expect((r as PromiseRejectedResult).reason).toBeInstanceOf(TokenExhaustedError);
    expect((await issuer.list())[0]!.usesLeft).toBe(0);
    const redemptions = await db.sublevel<string, string>("tokens", {}).keys({ gte: "r:", lt: "r;" }).all();
    expect(redemptions).toHaveLength(3);
  });

  it("keeps a redeemed token consumed across a reopen", async () => {
    let issuer = await openIssuer();
    const { token } = await issuer.create({ ...scope, ttlMs: HOUR_MS, uses: 1 }, T0);
    await issuer.redeem(requestFor(token, 1), T0 + 1);
    await db.close();
    issuer = await openIssuer();
    await expect(issuer.redeem(requestFor(token, 2), T0 + 2)).rejects.toThrow(TokenExhaustedError);
    expect((await issuer.redeem(requestFor(token, 1), T0 + 3)).repeat).toBe(true);
  });

  it("refuses expired, revoked, unknown tokens and bad MACs with distinct errors, changing nothing", async () => {
    const issuer = await openIssuer();
    const expiring = (await issuer.create({ ...scope, ttlMs: 1000, uses: 5 }, T0)).token;
    const revoked = await issuer.create({ ...scope, ttlMs: HOUR_MS, uses: 5 }, T0);
    expect(await issuer.revoke(revoked.info.id, T0 + 1)).toBe(true);
    expect(await issuer.revoke(revoked.info.id, T0 + 2)).toBe(false);
    const good = (await issuer.create({ ...scope, ttlMs: HOUR_MS, uses: 5 }, T0)).token;
    const before = await dump();

    await expect(issuer.redeem(requestFor(expiring, 1), T0 + 1000)).rejects.toThrow(TokenExpiredError);
    await expect(issuer.redeem(requestFor(revoked.token, 1), T0 + 10)).rejects.toThrow(TokenRevokedError);
    const unknown = { ...requestFor(good, 1), tokenId: new Uint8Array(16).fill(0xee) };
    await expect(issuer.redeem(unknown, T0 + 10)).rejects.toThrow(UnknownTokenError);
    const forged = { ...requestFor(good, 1), joinerKey: joinerKey(2) }; // MAC made for another key
    await expect(issuer.redeem(forged, T0 + 10)).rejects.toThrow(BadJoinMacError);
    const wrongSecret = { ...requestFor(good, 1), mac: new Uint8Array(32).fill(1) };
    await expect(issuer.redeem(wrongSecret, T0 + 10)).rejects.toThrow(BadJoinMacError);

    expect(await dump()).toBe(before);
    expect(issuer.counters.snapshot()).toMatchObject({
      "redeem-refused:token-expired": 1,
      "redeem-refused:token-revoked": 1,
      "redeem-refused:token-unknown": 1,
      "redeem-refused:bad-join-mac": 2,
    });
    // A sealed MAC key does not open under another node's key: refused as corrupt, not accepted.
    await db.close();
    const other = generateIdentity(new Uint8Array(32).fill(2));
    const stranger = await openIssuer({ sealKey: deriveTokenSealKey(other.secretKey) });
    await expect(stranger.redeem(requestFor(good, 1), T0 + 10)).rejects.toThrow(/does not open/);
  });

  it("trips the rate limit per token id and per source, and lets time forgive it", async () => {
    const limits = {
      perToken: { capacity: 3, refillIntervalMs: 60_000, maxKeys: 100 },
      perSource: { capacity: 5, refillIntervalMs: 60_000, maxKeys: 100 },
    };
    const issuer = await openIssuer({ limits });
    const a = (await issuer.create({ ...scope, ttlMs: HOUR_MS, uses: 5 }, T0)).token;
    const b = (await issuer.create({ ...scope, ttlMs: HOUR_MS, uses: 5 }, T0)).token;
    const bad = (token: string) => ({ ...requestFor(token, 1), mac: new Uint8Array(32) });

    // Per token: three failures from three sources, then even the right MAC is refused for a while.
    for (let i = 0; i < 3; i++)
      await expect(issuer.redeem(bad(a), T0 + 1, `s${i}`)).rejects.toThrow(BadJoinMacError);
    await expect(issuer.redeem(requestFor(a, 1), T0 + 2, "honest")).rejects.toThrow(RateLimitedError);
    expect((await issuer.redeem(requestFor(a, 1), T0 + 60_001, "honest")).repeat).toBe(false);

    // Per source: five failures against various tokens, then that source is refused on any token.
    for (let i = 0; i < 2; i++)
      await expect(issuer.redeem(bad(b), T0 + 1, "mallory")).rejects.toThrow(BadJoinMacError);
    for (let i = 0; i < 3; i++) {
      const unknown = { ...requestFor(b, 1), tokenId: new Uint8Array(16).fill(i + 1) };
      await expect(issuer.redeem(unknown, T0 + 1, "mallory")).rejects.toThrow(UnknownTokenError);
    }
    await expect(issuer.redeem(requestFor(b, 2), T0 + 2, "mallory")).rejects.toThrow(RateLimitedError);
    expect((await issuer.redeem(requestFor(b, 2), T0 + 2, "elsewhere")).usesLeft).toBe(4);
    expect(issuer.counters.get("redeem-refused:rate-limited")).toBe(2);
  });

  it("lets no more racing guesses through than the per-token burst allows", async () => {
    const limits = {
      perToken: { capacity: 4, refillIntervalMs: 60_000, maxKeys: 100 },
      perSource: { capacity: 1000, refillIntervalMs: 60_000, maxKeys: 100 },
    };
    const issuer = await openIssuer({ limits });
    const { token } = await issuer.create({ ...scope, ttlMs: HOUR_MS, uses: 1 }, T0);
    const guesses = Array.from({ length: 30 }, (_, i) =>
      issuer.redeem({ ...requestFor(token, 1), mac: new Uint8Array(32).fill(i) }, T0 + 1, `s${i}`),
    );
    const reasons = (await Promise.allSettled(guesses)).map((r) => (r as PromiseRejectedResult).reason.name);
    expect(reasons.filter((n) => n === "BadJoinMacError")).toHaveLength(4);
    expect(reasons.filter((n) => n === "RateLimitedError")).toHaveLength(26);
    // Joiners holding the secret but arriving late are refused as exhausted, never rate limited.
    const { token: t2 } = await issuer.create({ ...scope, ttlMs: HOUR_MS, uses: 1 }, T0);
    const late = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) => issuer.redeem(requestFor(t2, i), T0 + 1)),
    );
    expect(late.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    for (const r of late.filter((x) => x.status === "rejected"))
      expect((r as PromiseRejectedResult).reason).toBeInstanceOf(TokenExhaustedError);
  });

  it("reports a corrupt token record as a named error, not a crash or an acceptance", async () => {
    const issuer = await openIssuer();
    const { token, info } = await issuer.create({ ...scope, ttlMs: HOUR_MS, uses: 1 }, T0);
    const table = db.sublevel<string, string>("tokens", {});
    const record = JSON.parse((await table.get(`t:${info.id}`))!);
    await table.put(`t:${info.id}`, JSON.stringify({ ...record, usesLeft: 7 })); // above uses
    await expect(issuer.redeem(requestFor(token, 1), T0 + 1)).rejects.toThrow(TokenRecordCorruptError);
    await table.put(`t:${info.id}`, "{");
    await expect(issuer.list()).rejects.toThrow(TokenRecordCorruptError);
  });

  it("prunes tokens long expired, with their redemptions", async () => {
    const issuer = await openIssuer();
    const { token } = await issuer.create({ ...scope, ttlMs: 1000, uses: 2 }, T0);
    await issuer.redeem(requestFor(token, 1), T0 + 1);
    await issuer.create({ ...scope, ttlMs: HOUR_MS, uses: 1 }, T0);
    expect(await issuer.pruneExpired(T0 + 2000)).toBe(0); // still within the repeat grace
    expect(await issuer.pruneExpired(T0 + 1000 + 10 * 60_000)).toBe(1);
    expect(await issuer.list()).toHaveLength(1);
    expect(await db.iterator().all()).toHaveLength(1);
  });
});
