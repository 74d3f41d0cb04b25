/**
 * The join exchange over real ZeroMQ CURVE sockets, with a real TokenIssuer on LevelDB, against an
 * issuer that is slow to certify: a joiner that hears nothing asks again, and waits longer each time,
 * and the issuer works on a repeated request once and answers every copy of it.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Level } from "level";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { deriveTokenSealKey } from "../../bootstrap/token-seal.ts";
import { levelTokenStore } from "../../bootstrap/token-table.ts";
import { TokenIssuer } from "../../bootstrap/tokens.ts";
import { bytesEqual, generateIdentity, type Identity, issueCertificate } from "../../protocol/index.ts";
import { Counters } from "../../rings/index.ts";
import { type ZeromqTransport, zeromq } from "../transport/zeromq.ts";
import { type JoinAuthority, joinWithToken, serveJoins } from "./join.ts";

const HOUR_MS = 3_600_000;
let dir: string;
let db: Level<string, string>;
let endpoint: ZeromqTransport | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "enjin-join-"));
  db = new Level<string, string>(join(dir, "db"));
  await db.open();
});

afterEach(async () => {
  await endpoint?.close();
  endpoint = undefined;
  await db.close();
  await rm(dir, { recursive: true, force: true });
});

/**
 * A root that certifies ring-0 joiners on a join endpoint, each admission taking `admitMs`; the
 * keys it certified, in order, and a token for one join.
 */
async function slowIssuer(admitMs: number) {
  const root: Identity = generateIdentity();
  endpoint = await zeromq({ identity: root, authorize: () => true })({ listen: "tcp://127.0.0.1:0" });
  const tokens = new TokenIssuer({
    store: levelTokenStore(db.sublevel<string, string>("tokens", {})),
    issuerKey: root.publicKey,
    endpoints: [endpoint.address],
    sealKey: deriveTokenSealKey(root.secretKey),
  });
  const certified: Uint8Array[] = [];
  const counters = new Counters();
  const authority: JoinAuthority = {
    identity: root,
    tokens,
    counters,
    now: () => Date.now(),
    async admit(joinerKey, _name, scope, nowMs) {
      certified.push(joinerKey);
      await new Promise((resolve) => setTimeout(resolve, admitMs));
      const certificate = issueCertificate(root, {
        subject: joinerKey,
        issuer: root.publicKey,
        ring: scope.ring,
        roles: ["node"],
        compartment: [...scope.compartment],
        tiers: [...scope.tiers],
        serial: nowMs,
        notBeforeMs: nowMs - 60_000,
        expiresMs: nowMs + HOUR_MS,
      });
      return {
        certificate,
        chain: [],
        revocations: [],
        members: [],
        peers: [],
        sealedSecrets: new Uint8Array(0),
        certificates: [],
      };
    },
  };
  serveJoins(endpoint, authority);
  const { token } = await tokens.create(
    { ring: 0, tiers: [], compartment: [], ttlMs: HOUR_MS, uses: 1 },
    Date.now(),
  );
  return { root, token, certified, counters };
}

describe("joining a slow issuer", () => {
  it("asks again while it waits, longer each time; the issuer certifies once and answers every copy", async () => {
    // Answers come after 2.2 s; the joiner asks at 0, 0.5 and 1.5 s (waits of 0.5, 1 and 1.5 s), so
    // each copy reaches the issuer while the first is being worked on, with 0.7 s to spare.
    const { root, token, certified, counters } = await slowIssuer(2_200);
    const joiner = generateIdentity();
    const attempts: number[] = [];
    const joined = await joinWithToken({
      token,
      identity: joiner,
      name: "slow-one",
      listen: "tcp://127.0.0.1:0",
      nowMs: () => Date.now(),
      attemptTimeoutMs: 500,
      onAttempt: (_endpoint, attempt) => attempts.push(attempt),
    });
    expect(bytesEqual(joined.rootKey, root.publicKey)).toBe(true);
    expect(attempts).toEqual([1, 2, 3]);
    // One certificate, for the joiner; the two repeats waited for it instead of making their own.
    expect(certified).toHaveLength(1);
    expect(bytesEqual(certified[0]!, joiner.publicKey)).toBe(true);
    expect(counters.get("join:coalesced")).toBe(2);
    expect(counters.get("join:admitted")).toBe(1);
  });

  it("a second joiner with the same one-use token does not ride on the first one's answer", async () => {
    const { token, certified, counters } = await slowIssuer(1_000);
    const join = (name: string) =>
      joinWithToken({
        token,
        identity: generateIdentity(),
        name,
        listen: "tcp://127.0.0.1:0",
        nowMs: () => Date.now(),
        attemptTimeoutMs: 2_000,
      });
    const first = join("first");
    await new Promise((resolve) => setTimeout(resolve, 200)); // the first is being worked on
    await expect(join("second")).rejects.toThrow(/the issuer refused the join: .*used up/);
    await first;
    expect(certified).toHaveLength(1);
    expect(counters.get("join:coalesced")).toBe(0);
  });

  it("gives up with the endpoint named once every attempt has had its wait", async () => {
    const { token } = await slowIssuer(5_000);
    const started = Date.now();
    const attempts: number[] = [];
    await expect(
      joinWithToken({
        token,
        identity: generateIdentity(),
        name: "too-slow",
        listen: "tcp://127.0.0.1:0",
        nowMs: () => Date.now(),
        attemptTimeoutMs: 100,
        onAttempt: (_endpoint, attempt) => attempts.push(attempt),
      }),
    ).rejects.toThrow(/no issuer named by the token answered \(tcp:\/\/127\.0\.0\.1:\d+[^)]*: no answer\)/);
    expect(attempts).toEqual([1, 2, 3]);
    // 100 + 200 + 300 ms of waiting, not 3 × 100.
    expect(Date.now() - started).toBeGreaterThanOrEqual(600);
  });
});
