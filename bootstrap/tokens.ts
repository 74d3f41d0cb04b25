/**
 * One-time join tokens, issuer side. `create` mints a token and stores, before it returns, only the
 * token's MAC key (a hash of the secret, sealed at rest), its scope, expiry and uses left.
 * `redeem` checks a JoinRequest's MAC against that key, then in one durable batch decrements the
 * uses and records the joiner's key, before it answers. Redemptions of one token run one at a time
 * (a per-token mutex), so a token is never used more than it allows; a crash after the batch leaves
 * the token consumed, and the same joiner retrying with the same key is recognised (`repeat`).
 *
 * Refusals are distinct RedeemError subclasses, counted by reason, and change nothing stored.
 * Failed proofs (bad MAC, unknown token id, unusable request) are limited per token id and per
 * source; the MAC is checked before the token's state is revealed. Time is always a parameter.
 */
import { randomBytes } from "node:crypto";
import * as v from "valibot";
import {
  type JoinRequest,
  joinMacKey,
  keyHex,
  LABEL_PATTERN,
  type PublicKey,
  TOKEN_ID_BYTES,
  TOKEN_SECRET_BYTES,
  verifyJoinMac,
} from "../protocol/index.ts";
import { Counters } from "../rings/index.ts";
import {
  BadJoinMacError,
  InvalidJoinRequestError,
  RateLimitedError,
  RedeemError,
  TokenExhaustedError,
  TokenExpiredError,
  TokenRevokedError,
  TokenScopeError,
  UnknownTokenError,
} from "./errors.ts";
import { KeyedMutex } from "./keyed-mutex.ts";
import {
  type BucketOptions,
  FailureLimiter,
  MAX_LIMITER_KEYS,
  SOURCE_FAILURE_BURST,
  SOURCE_FAILURE_REFILL_MS,
  TOKEN_FAILURE_BURST,
  TOKEN_FAILURE_REFILL_MS,
} from "./rate-limit.ts";
import { encodeJoinToken } from "./token-codec.ts";
import { SEAL_KEY_BYTES, SEAL_NONCE_BYTES, seal, unseal } from "./token-seal.ts";
import { type TokenRecord, type TokenScope, type TokenStore, tokenScopeSchema } from "./token-table.ts";

/** Longest token lifetime an issuer grants (30 days). */
export const MAX_TOKEN_TTL_MS = 30 * 24 * 60 * 60 * 1000;
/** Most uses one token may allow. */
export const MAX_TOKEN_USES = 1000;
/**
 * After expiry, how long a joiner that already redeemed may still retry and be recognised
 * (its answer was lost in a crash just before the token ran out).
 */
export const REPEAT_GRACE_MS = 10 * 60 * 1000;

/** What an operator asks for. */
export interface TokenRequest extends TokenScope {
  readonly ttlMs: number;
  readonly uses: number;
}

/** A minted token: the string to hand to the joiner (shown once) and what the issuer stored. */
export interface CreatedToken {
  /** The one-line token (`enjin1.…`); the only copy of the secret. */
  readonly token: string;
  readonly info: TokenInfo;
}

/** A token as `list` shows it: no secret, no key. */
export interface TokenInfo {
  /** Token id, lowercase hex. */
  readonly id: string;
  readonly scope: TokenScope;
  readonly createdMs: number;
  readonly expiresMs: number;
  readonly uses: number;
  readonly usesLeft: number;
  readonly revokedMs: number | null;
}

/** A successful redemption: what the joiner may be certified as. */
export interface Redeemed {
  /** Token id, lowercase hex. */
  readonly tokenId: string;
  readonly scope: TokenScope;
  readonly joinerKey: PublicKey;
  readonly name: string;
  readonly usesLeft: number;
  /** True when this joiner key had already redeemed the token (a retry after a lost answer). */
  readonly repeat: boolean;
}

/** Limits on failed attempts. */
export interface RedeemLimits {
  readonly perToken: BucketOptions;
  readonly perSource: BucketOptions;
}

/** Default limits: a handful of failures per token id, a few more per source. */
export const DEFAULT_REDEEM_LIMITS: RedeemLimits = {
  perToken: {
    capacity: TOKEN_FAILURE_BURST,
    refillIntervalMs: TOKEN_FAILURE_REFILL_MS,
    maxKeys: MAX_LIMITER_KEYS,
  },
  perSource: {
    capacity: SOURCE_FAILURE_BURST,
    refillIntervalMs: SOURCE_FAILURE_REFILL_MS,
    maxKeys: MAX_LIMITER_KEYS,
  },
};

/** What a TokenIssuer is built from. */
export interface TokenIssuerOptions {
  readonly store: TokenStore;
  /** The issuer's public key; its fingerprint goes in every token. */
  readonly issuerKey: PublicKey;
  /** Where joiners reach the issuer (1..MAX_TOKEN_ENDPOINTS). */
  readonly endpoints: readonly string[];
  /** SEAL_KEY_BYTES sealing MAC keys at rest: deriveTokenSealKey(node secret key). */
  readonly sealKey: Uint8Array;
  /** Counter sink; `token-redeemed`, `token-created`, `redeem-refused:<reason>`. */
  readonly counters?: Counters;
  /** Random bytes (tests pass a seeded source); defaults to node:crypto. */
  readonly random?: (bytes: number) => Uint8Array;
  readonly limits?: RedeemLimits;
}

const toHex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");
const info = (r: TokenRecord): TokenInfo => ({
  id: r.id,
  scope: r.scope,
  createdMs: r.createdMs,
  expiresMs: r.expiresMs,
  uses: r.uses,
  usesLeft: r.usesLeft,
  revokedMs: r.revokedMs,
});

/** Mints, lists, revokes and redeems join tokens over a TokenStore. One per issuing node. */
export class TokenIssuer {
  /** Counted outcomes, by reason. */
  readonly counters: Counters;
  readonly #options: TokenIssuerOptions;
  readonly #random: (bytes: number) => Uint8Array;
  readonly #mutex = new KeyedMutex();
  readonly #perToken: FailureLimiter;
  readonly #perSource: FailureLimiter;

  constructor(options: TokenIssuerOptions) {
    if (options.sealKey.length !== SEAL_KEY_BYTES)
      throw new TokenScopeError(`sealKey must be ${SEAL_KEY_BYTES} bytes`);
    this.#options = options;
    this.counters = options.counters ?? new Counters();
    this.#random = options.random ?? ((n) => new Uint8Array(randomBytes(n)));
    const limits = options.limits ?? DEFAULT_REDEEM_LIMITS;
    this.#perToken = new FailureLimiter(limits.perToken);
    this.#perSource = new FailureLimiter(limits.perSource);
  }

  /** Mint a token; the record is durably stored before the token string is returned. */
  async create(request: TokenRequest, nowMs: number): Promise<CreatedToken> {
    const scopeCheck = v.safeParse(tokenScopeSchema, {
      ring: request.ring,
      tiers: [...request.tiers],
      compartment: [...request.compartment],
    });
    if (!scopeCheck.success)
      throw new TokenScopeError(`invalid token scope: ${scopeCheck.issues.map((i) => i.message).join("; ")}`);
    if (!Number.isSafeInteger(request.ttlMs) || request.ttlMs <= 0 || request.ttlMs > MAX_TOKEN_TTL_MS)
      throw new TokenScopeError(`ttlMs must be 1..${MAX_TOKEN_TTL_MS}, got ${request.ttlMs}`);
    if (!Number.isSafeInteger(request.uses) || request.uses < 1 || request.uses > MAX_TOKEN_USES)
      throw new TokenScopeError(`uses must be 1..${MAX_TOKEN_USES}, got ${request.uses}`);
    const tokenId = this.#random(TOKEN_ID_BYTES);
    const secret = this.#random(TOKEN_SECRET_BYTES);
    const token = encodeJoinToken({
      endpoints: this.#options.endpoints,
      issuerKey: this.#options.issuerKey,
      tokenId,
      secret,
    });
    const record: TokenRecord = {
      id: toHex(tokenId),
      scope: scopeCheck.output,
      createdMs: nowMs,
      expiresMs: nowMs + request.ttlMs,
      uses: request.uses,
      usesLeft: request.uses,
      revokedMs: null,
      sealedMacKey: seal(this.#options.sealKey, this.#random(SEAL_NONCE_BYTES), joinMacKey(secret), tokenId),
    };
    await this.#mutex.run(record.id, async () => {
      if ((await this.#options.store.getToken(record.id)) !== undefined)
        throw new TokenScopeError("token id collision: the random source repeats itself");
      await this.#options.store.putToken(record);
    });
    secret.fill(0);
    this.counters.inc("token-created");
    return { token, info: info(record) };
  }

  /** Every stored token, without secrets. */
  async list(): Promise<TokenInfo[]> {
    return (await this.#options.store.listTokens()).map(info);
  }

  /** Revoke a token (hex id) so no further joins succeed. False when unknown or already revoked. */
  async revoke(tokenId: string, nowMs: number): Promise<boolean> {
    return this.#mutex.run(tokenId, async () => {
      const record = await this.#options.store.getToken(tokenId);
      if (record === undefined || record.revokedMs !== null) return false;
      await this.#options.store.putToken({ ...record, revokedMs: nowMs });
      return true;
    });
  }

  /** Forget tokens expired more than REPEAT_GRACE_MS before `nowMs`, with their redemptions. */
  async pruneExpired(nowMs: number): Promise<number> {
    let pruned = 0;
    for (const record of await this.#options.store.listTokens()) {
      if (record.expiresMs + REPEAT_GRACE_MS > nowMs) continue;
      await this.#mutex.run(record.id, () => this.#options.store.deleteToken(record.id));
      pruned++;
    }
    return pruned;
  }

  /**
   * Check a join request and consume one use. `source` names where it came from (an address) for
   * rate limiting. Throws a RedeemError subclass and changes nothing on refusal.
   */
  async redeem(request: JoinRequest, nowMs: number, source = "unknown"): Promise<Redeemed> {
    const tokenId = request.tokenId.length === TOKEN_ID_BYTES ? toHex(request.tokenId) : "invalid";
    const sourceKey = `source:${source}`;
    try {
      // Limits are checked and failures recorded under the token's lock, so racing guesses cannot
      // all slip past a nearly empty bucket.
      return await this.#mutex.run(tokenId, async () => {
        if (!this.#perToken.allows(tokenId, nowMs) || !this.#perSource.allows(sourceKey, nowMs))
          throw new RateLimitedError("too many failed join attempts lately: wait a minute and try again");
        try {
          return await this.#redeemLocked(request, tokenId, nowMs);
        } catch (err) {
          // Only failed proofs count against the limits: guessing a secret, scanning for token ids.
          // Expired, revoked and used-up tokens are reached only with a valid MAC, so they do not.
          if (
            err instanceof BadJoinMacError ||
            err instanceof UnknownTokenError ||
            err instanceof InvalidJoinRequestError
          ) {
            this.#perToken.fail(tokenId, nowMs);
            this.#perSource.fail(sourceKey, nowMs);
          }
          throw err;
        }
      });
    } catch (err) {
      if (err instanceof RedeemError) return this.#refuse(err);
      throw err;
    }
  }

  #refuse(err: RedeemError): never {
    this.counters.inc(`redeem-refused:${err.reason}`);
    throw err;
  }

  async #redeemLocked(request: JoinRequest, tokenId: string, nowMs: number): Promise<Redeemed> {
    const store = this.#options.store;
    if (!LABEL_PATTERN.test(request.name))
      throw new InvalidJoinRequestError("the name asked for is not a label (a-z, 0-9, '.', '_', '-'; 1..63)");
    const record = tokenId === "invalid" ? undefined : await store.getToken(tokenId);
    if (record === undefined)
      throw new UnknownTokenError("no such join token on this issuer: check the token, or ask for a new one");
    // The MAC is checked before anything about the token's state is revealed.
    const macKey = unseal(this.#options.sealKey, record.sealedMacKey, request.tokenId);
    const ok = verifyJoinMac(request.mac, macKey, request.tokenId, request.joinerKey);
    macKey.fill(0);
    if (!ok)
      throw new BadJoinMacError(
        "join proof does not verify: the token secret is wrong, or the request was altered",
      );
    const joinerKey = keyHex(request.joinerKey);
    const result = (usesLeft: number, repeat: boolean, name: string): Redeemed => ({
      tokenId,
      scope: record.scope,
      joinerKey: Uint8Array.from(request.joinerKey),
      name,
      usesLeft,
      repeat,
    });
    if (record.revokedMs !== null)
      throw new TokenRevokedError("this join token was revoked: ask for a new one");
    const previous = await store.getRedemption(tokenId, joinerKey);
    if (previous !== undefined && nowMs < record.expiresMs + REPEAT_GRACE_MS) {
      this.counters.inc("token-redeem-repeat");
      return result(record.usesLeft, true, previous.name);
    }
    if (nowMs >= record.expiresMs)
      throw new TokenExpiredError("this join token has expired: ask for a new one");
    if (record.usesLeft <= 0)
      throw new TokenExhaustedError("this join token has been used up: ask for a new one");
    const updated: TokenRecord = { ...record, usesLeft: record.usesLeft - 1 };
    await store.commitRedemption(updated, { tokenId, joinerKey, name: request.name, atMs: nowMs });
    this.counters.inc("token-redeemed");
    return result(updated.usesLeft, false, request.name);
  }
}
