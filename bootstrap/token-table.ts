/**
 * Where an issuer keeps its tokens. `TokenStore` is the small contract TokenIssuer needs;
 * `levelTokenStore` implements it over any LevelDB table with string keys and values (in the agent,
 * the `tokens` sublevel of the node's store), so bootstrap/ needs no import from agent/.
 *
 * Keys: `t:<token id hex>` → TokenRecord JSON; `r:<token id hex>:<joiner key hex>` → Redemption
 * JSON. Every read is checked against a schema: a corrupt value is a TokenRecordCorruptError.
 * A redemption writes the decremented record and the redemption in one synced batch.
 */
import * as v from "valibot";
import { LABEL_PATTERN, MAX_COMPARTMENT_DEPTH, MAX_TIERS, type Ring } from "../protocol/index.ts";
import { TokenRecordCorruptError } from "./errors.ts";

/** What a token lets its joiner become. */
export interface TokenScope {
  readonly ring: Ring;
  readonly tiers: readonly string[];
  readonly compartment: readonly string[];
}

/** A token as the issuer stores it: never the secret, only its MAC key sealed at rest. */
export interface TokenRecord {
  /** Token id, lowercase hex. */
  readonly id: string;
  readonly scope: TokenScope;
  readonly createdMs: number;
  readonly expiresMs: number;
  /** Uses the token was made with. */
  readonly uses: number;
  readonly usesLeft: number;
  /** When an operator revoked it, or null. */
  readonly revokedMs: number | null;
  /** base64url of nonce || AES-256-GCM(joinMacKey(secret)) || tag; see token-seal.ts. */
  readonly sealedMacKey: string;
}

/** One successful join with a token. */
export interface Redemption {
  /** Token id, lowercase hex. */
  readonly tokenId: string;
  /** The joiner's public key, lowercase hex. */
  readonly joinerKey: string;
  /** The name the joiner asked for. */
  readonly name: string;
  readonly atMs: number;
}

/** The storage TokenIssuer needs. Implementations must apply `redeem` atomically. */
export interface TokenStore {
  /** The record for `tokenId` (hex), or undefined. */
  getToken(tokenId: string): Promise<TokenRecord | undefined>;
  /** Every record, in token id order. */
  listTokens(): Promise<TokenRecord[]>;
  /** Write (create or replace) a record, durably, before returning. */
  putToken(record: TokenRecord): Promise<void>;
  /** Write the updated record and the redemption in one durable batch. */
  commitRedemption(record: TokenRecord, redemption: Redemption): Promise<void>;
  /** The redemption of `tokenId` by `joinerKey` (both hex), or undefined. */
  getRedemption(tokenId: string, joinerKey: string): Promise<Redemption | undefined>;
  /** Delete a record and all its redemptions in one batch. */
  deleteToken(tokenId: string): Promise<void>;
}

/** One write in a LevelTable batch. */
export type LevelTableOp = { type: "put"; key: string; value: string } | { type: "del"; key: string };

/**
 * The slice of an abstract-level database (or sublevel) with utf8 keys and values that
 * levelTokenStore uses. A `level` sublevel satisfies it as is.
 */
export interface LevelTable {
  get(key: string): Promise<string | undefined>;
  batch(ops: LevelTableOp[], options: { sync: boolean }): Promise<void>;
  keys(options: { gte: string; lt: string }): AsyncIterable<string>;
  values(options: { gte: string; lt: string }): AsyncIterable<string>;
}

/** Longest stored token or redemption value (bytes); anything longer is corrupt. */
export const MAX_TOKEN_RECORD_CHARS = 8 * 1024;

const HEX_ID = /^[0-9a-f]{32}$/;
const HEX_KEY = /^[0-9a-f]{64}$/;
const uint = v.pipe(v.number(), v.safeInteger(), v.minValue(0));
const label = v.pipe(v.string(), v.regex(LABEL_PATTERN));

/** Schema of a TokenScope (also used to check what an operator asks for). */
export const tokenScopeSchema = v.object({
  ring: v.picklist([0, 1, 2] as const),
  tiers: v.pipe(
    v.array(label),
    v.maxLength(MAX_TIERS),
    v.check((t) => new Set(t).size === t.length, "duplicate tier"),
  ),
  compartment: v.pipe(v.array(label), v.maxLength(MAX_COMPARTMENT_DEPTH)),
});

const recordSchema = v.pipe(
  v.strictObject({
    id: v.pipe(v.string(), v.regex(HEX_ID)),
    scope: tokenScopeSchema,
    createdMs: uint,
    expiresMs: uint,
    uses: v.pipe(uint, v.minValue(1)),
    usesLeft: uint,
    revokedMs: v.nullable(uint),
    sealedMacKey: v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]+$/), v.maxLength(256)),
  }),
  v.check((r) => r.usesLeft <= r.uses, "usesLeft above uses"),
);

const redemptionSchema = v.strictObject({
  tokenId: v.pipe(v.string(), v.regex(HEX_ID)),
  joinerKey: v.pipe(v.string(), v.regex(HEX_KEY)),
  name: v.pipe(v.string(), v.maxLength(256)),
  atMs: uint,
});

function parse<T>(schema: v.GenericSchema<unknown, T>, key: string, raw: string): T {
  if (raw.length > MAX_TOKEN_RECORD_CHARS)
    throw new TokenRecordCorruptError(`token table: value at "${key}" is ${raw.length} chars, too long`);
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (cause) {
    throw new TokenRecordCorruptError(`token table: value at "${key}" is not JSON`, { cause });
  }
  const result = v.safeParse(schema, json);
  if (!result.success)
    throw new TokenRecordCorruptError(
      `token table: value at "${key}" breaks its schema: ${result.issues.map((i) => i.message).join("; ")}`,
    );
  return result.output;
}

const tokenKey = (id: string) => `t:${id}`;
const redemptionKey = (id: string, joiner: string) => `r:${id}:${joiner}`;

/** A TokenStore over a LevelDB table (a sublevel with utf8 keys and values). Writes are synced. */
export function levelTokenStore(table: LevelTable): TokenStore {
  const sync = { sync: true };
  return {
    async getToken(tokenId) {
      const key = tokenKey(tokenId);
      const raw = await table.get(key);
      return raw === undefined ? undefined : parse(recordSchema, key, raw);
    },
    async listTokens() {
      const out: TokenRecord[] = [];
      for await (const raw of table.values({ gte: "t:", lt: "t;" }))
        out.push(parse(recordSchema, "t:*", raw));
      return out;
    },
    async putToken(record) {
      await table.batch([{ type: "put", key: tokenKey(record.id), value: JSON.stringify(record) }], sync);
    },
    async commitRedemption(record, redemption) {
      await table.batch(
        [
          { type: "put", key: tokenKey(record.id), value: JSON.stringify(record) },
          {
            type: "put",
            key: redemptionKey(redemption.tokenId, redemption.joinerKey),
            value: JSON.stringify(redemption),
          },
        ],
        sync,
      );
    },
    async getRedemption(tokenId, joinerKey) {
      const key = redemptionKey(tokenId, joinerKey);
      const raw = await table.get(key);
      return raw === undefined ? undefined : parse(redemptionSchema, key, raw);
    },
    async deleteToken(tokenId) {
      const ops: LevelTableOp[] = [{ type: "del", key: tokenKey(tokenId) }];
      for await (const key of table.keys({ gte: `r:${tokenId}:`, lt: `r:${tokenId};` }))
        ops.push({ type: "del", key });
      await table.batch(ops, sync);
    },
  };
}
