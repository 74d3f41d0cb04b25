import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { fingerprint, generateIdentity, joinMacKey, verifyJoinMac } from "../protocol/index.ts";
import {
  ForeignTokenError,
  TokenChecksumError,
  TokenEncodingError,
  TokenFieldError,
  TokenFormatError,
  TokenIssuerMismatchError,
  TokenRecordCorruptError,
  TokenTooLongError,
  TokenTruncatedError,
  TokenVersionError,
} from "./errors.ts";
import { assertTokenIssuer, makeJoinRequest } from "./joiner.ts";
import { KeyedMutex } from "./keyed-mutex.ts";
import { FailureLimiter } from "./rate-limit.ts";
import {
  decodeJoinToken,
  encodeJoinToken,
  MAX_TOKEN_CHARS,
  MAX_TOKEN_ENDPOINTS,
  TOKEN_PREFIX,
} from "./token-codec.ts";
import { deriveTokenSealKey, seal, unseal } from "./token-seal.ts";

const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
const endpoint = fc.oneof(
  fc.stringMatching(/^tcp:\/\/[a-z0-9.-]{1,40}:[0-9]{1,5}$/),
  fc.string({ unit: "grapheme", minLength: 1, maxLength: 30 }).filter((s) => !/[\s\p{Cc}]/u.test(s)),
);
const partsArb = fc.record({
  endpoints: fc.array(endpoint, { minLength: 1, maxLength: MAX_TOKEN_ENDPOINTS }),
  issuerKey: bytes(32),
  tokenId: bytes(16),
  secret: bytes(32),
});
const rawOf = (token: string) => new Uint8Array(Buffer.from(token.slice(TOKEN_PREFIX.length), "base64url"));
const tokenOf = (raw: Uint8Array) => TOKEN_PREFIX + Buffer.from(raw).toString("base64url");

describe("join token codec", () => {
  it("round-trips every valid token, as one line with the prefix", () => {
    fc.assert(
      fc.property(partsArb, (parts) => {
        const token = encodeJoinToken(parts);
        expect(token.startsWith(TOKEN_PREFIX)).toBe(true);
        expect(token).toMatch(/^[A-Za-z0-9._-]+$/);
        expect(token.length).toBeLessThanOrEqual(MAX_TOKEN_CHARS);
        const back = decodeJoinToken(`  ${token}\n`);
        expect(back.endpoints).toEqual(parts.endpoints);
        expect(back.tokenId).toEqual(parts.tokenId);
        expect(back.secret).toEqual(parts.secret);
        expect(back.issuerFingerprint).toBe(fingerprint(parts.issuerKey));
      }),
    );
  });

  it("refuses every truncation with a named error", () => {
    fc.assert(
      fc.property(partsArb, fc.nat(), (parts, cut) => {
        const raw = rawOf(encodeJoinToken(parts));
        const short = raw.subarray(0, cut % raw.length);
        expect(() => decodeJoinToken(tokenOf(short))).toThrow(TokenFormatError);
      }),
    );
    // Cut inside the fixed fields: reported as truncated, not as some other fault.
    const raw = rawOf(encodeJoinToken(fc.sample(partsArb, 1)[0]!));
    expect(() => decodeJoinToken(tokenOf(raw.subarray(0, raw.length - 5)))).toThrow(TokenTruncatedError);
  });

  it("refuses every single bit flip with a named error", () => {
    fc.assert(
      fc.property(partsArb, fc.nat(), fc.nat({ max: 7 }), (parts, at, bit) => {
        const raw = Uint8Array.from(rawOf(encodeJoinToken(parts)));
        raw[at % raw.length]! ^= 1 << bit;
        expect(() => decodeJoinToken(tokenOf(raw))).toThrow(TokenFormatError);
      }),
    );
  });

  it("refuses a changed character of the string form", () => {
    fc.assert(
      fc.property(partsArb, fc.nat(), fc.constantFrom(..."AQgw_-9z"), (parts, at, ch) => {
        const token = encodeJoinToken(parts);
        const i = TOKEN_PREFIX.length + (at % (token.length - TOKEN_PREFIX.length));
        fc.pre(token[i] !== ch);
        const changed = token.slice(0, i) + ch + token.slice(i + 1);
        expect(() => decodeJoinToken(changed)).toThrow(TokenFormatError);
      }),
    );
  });

  it("refuses appended bytes and oversized input before decoding it", () => {
    const token = encodeJoinToken(fc.sample(partsArb, 1)[0]!);
    const raw = rawOf(token);
    expect(() => decodeJoinToken(tokenOf(new Uint8Array([...raw, 0, 0, 0])))).toThrow(TokenFormatError);
    expect(() => decodeJoinToken(token + token.slice(TOKEN_PREFIX.length))).toThrow(TokenFormatError);
    expect(() => decodeJoinToken(TOKEN_PREFIX + "A".repeat(MAX_TOKEN_CHARS))).toThrow(TokenTooLongError);
    expect(() => decodeJoinToken(TOKEN_PREFIX + "A".repeat(10_000_000))).toThrow(TokenTooLongError);
  });

  it("names foreign input, a newer format, bad characters and non-canonical base64", () => {
    const token = encodeJoinToken(fc.sample(partsArb, 1)[0]!);
    expect(() => decodeJoinToken("")).toThrow(ForeignTokenError);
    expect(() => decodeJoinToken("K10::abcdef")).toThrow(ForeignTokenError); // a kubeadm token
    expect(() => decodeJoinToken("ghp_0123456789abcdef")).toThrow(ForeignTokenError);
    expect(() => decodeJoinToken(token.replace("enjin1.", "enjin2."))).toThrow(TokenVersionError);
    expect(() => decodeJoinToken(token.slice(0, 12) + " " + token.slice(13))).toThrow(TokenEncodingError);
    expect(() => decodeJoinToken(token + "=")).toThrow(TokenEncodingError);
    const raw = Uint8Array.from(rawOf(token));
    raw[0] = 2;
    expect(() => decodeJoinToken(tokenOf(raw))).toThrow(TokenVersionError);
    // The message says what to do.
    expect(() => decodeJoinToken("hello")).toThrow(/ringctl token create/);
  });

  it("checksum failures are their own class", () => {
    const token = encodeJoinToken(fc.sample(partsArb, 1)[0]!);
    const raw = Uint8Array.from(rawOf(token));
    raw[raw.length - 40]! ^= 0x10; // inside the secret
    expect(() => decodeJoinToken(tokenOf(raw))).toThrow(TokenChecksumError);
  });

  it("refuses to encode what it would refuse to decode", () => {
    const base = { issuerKey: new Uint8Array(32), tokenId: new Uint8Array(16), secret: new Uint8Array(32) };
    expect(() => encodeJoinToken({ ...base, endpoints: [] })).toThrow(TokenFieldError);
    expect(() => encodeJoinToken({ ...base, endpoints: ["a b"] })).toThrow(TokenFieldError);
    expect(() => encodeJoinToken({ ...base, endpoints: ["x".repeat(257)] })).toThrow(TokenFieldError);
    expect(() => encodeJoinToken({ ...base, endpoints: Array(5).fill("a") })).toThrow(TokenFieldError);
    expect(() => encodeJoinToken({ ...base, endpoints: ["a"], secret: new Uint8Array(31) })).toThrow(
      TokenFieldError,
    );
  });
});

describe("joiner side", () => {
  it("checks the issuer's key and proves the secret with a MAC the issuer's stored key verifies", () => {
    const issuer = generateIdentity(new Uint8Array(32).fill(1));
    const other = generateIdentity(new Uint8Array(32).fill(2));
    const joiner = generateIdentity(new Uint8Array(32).fill(3));
    const secret = new Uint8Array(32).fill(7);
    const token = decodeJoinToken(
      encodeJoinToken({
        endpoints: ["tcp://a:1"],
        issuerKey: issuer.publicKey,
        tokenId: new Uint8Array(16),
        secret,
      }),
    );
    expect(() => assertTokenIssuer(token, issuer.publicKey)).not.toThrow();
    expect(() => assertTokenIssuer(token, other.publicKey)).toThrow(TokenIssuerMismatchError);
    const req = makeJoinRequest(token, joiner.publicKey, "web-1");
    expect(verifyJoinMac(req.mac, joinMacKey(secret), req.tokenId, joiner.publicKey)).toBe(true);
  });
});

describe("sealing MAC keys at rest", () => {
  it("opens only with the same key and the same token id", () => {
    const key = deriveTokenSealKey(generateIdentity(new Uint8Array(32).fill(1)).secretKey);
    const otherKey = deriveTokenSealKey(generateIdentity(new Uint8Array(32).fill(2)).secretKey);
    const id = new Uint8Array(16).fill(5);
    const plain = new Uint8Array(32).fill(9);
    const sealed = seal(key, new Uint8Array(12), plain, id);
    expect(unseal(key, sealed, id)).toEqual(plain);
    expect(() => unseal(otherKey, sealed, id)).toThrow(TokenRecordCorruptError);
    expect(() => unseal(key, sealed, new Uint8Array(16))).toThrow(TokenRecordCorruptError);
    expect(() => unseal(key, sealed.slice(0, 10), id)).toThrow(TokenRecordCorruptError);
  });
});

describe("FailureLimiter", () => {
  it("allows a burst of failures, then refuses until time forgives them", () => {
    const limiter = new FailureLimiter({ capacity: 3, refillIntervalMs: 1000, maxKeys: 10 });
    for (let i = 0; i < 3; i++) {
      expect(limiter.allows("k", 0)).toBe(true);
      limiter.fail("k", 0);
    }
    expect(limiter.allows("k", 0)).toBe(false);
    expect(limiter.allows("k", 999)).toBe(false);
    expect(limiter.allows("k", 1000)).toBe(true);
    expect(limiter.allows("other", 0)).toBe(true);
    expect(limiter.allows("k", 10_000)).toBe(true);
    expect(limiter.size()).toBe(0); // full buckets are forgotten
  });

  it("remembers at most maxKeys keys and tolerates time going backwards", () => {
    const limiter = new FailureLimiter({ capacity: 1, refillIntervalMs: 1000, maxKeys: 4 });
    for (let i = 0; i < 100; i++) limiter.fail(`k${i}`, 5000);
    expect(limiter.size()).toBe(4);
    expect(limiter.allows("k99", 0)).toBe(false);
  });
});

describe("KeyedMutex", () => {
  it("runs work under one key one at a time, in order, even when some of it fails", async () => {
    const mutex = new KeyedMutex();
    const log: string[] = [];
    let inside = 0;
    const job = (name: string, fail = false) =>
      mutex.run("t", async () => {
        inside++;
        expect(inside).toBe(1);
        await new Promise((r) => setTimeout(r, 1));
        log.push(name);
        inside--;
        if (fail) throw new Error(name);
        return name;
      });
    const results = await Promise.allSettled([
      job("a"),
      job("b", true),
      job("c"),
      mutex.run("u", async () => "u"),
    ]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled", "fulfilled"]);
    expect(log).toEqual(["a", "b", "c"]);
    expect(mutex.size()).toBe(0);
  });
});
