/**
 * The node's state: one LevelDB per node at `<dir>/db`, with a sublevel per concern (identity,
 * trust, tokens, members, children, commands, observations, audit), and the private key in
 * `<dir>/node.key` (key-file.ts). Values are JSON checked against a schema on read; a change that
 * touches several keys or sublevels goes in one `batch`, which LevelDB applies whole or not at all.
 *
 * Layout of the directory:
 *   <dir>/            0700
 *   <dir>/node.key    0600, the ed25519 seed (never in the database)
 *   <dir>/db/         LevelDB; identity/public = {publicKey, fingerprint, createdMs}
 */
import { mkdir } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";
import type { Level } from "level";
import * as v from "valibot";
import { levelTokenStore, type TokenStore } from "../../bootstrap/index.ts";
import { fingerprint, type Identity, keyHex } from "../../protocol/index.ts";
import { AuditLog } from "./audit-log.ts";
import { CommandSeenSet } from "./command-seen.ts";
import { IdentityMismatchError, InvalidValueError, StoreError, StoreLockedError } from "./errors.ts";
import { checkKey, decodeValue, encodeValue } from "./json-value.ts";
import { loadOrCreateIdentity, STATE_DIR_MODE } from "./key-file.ts";

// level is CommonJS: `require` skips node's scan of its source for named exports (protocol/sodium.ts).
const level = createRequire(import.meta.url)("level") as typeof import("level");

/** The sublevels of a node's database, one per concern. Append only: names are on disk. */
export const SUBLEVEL_NAMES = [
  "identity",
  "trust",
  "tokens",
  "members",
  "children",
  "commands",
  "observations",
  "audit",
] as const;
/** The name of one sublevel. */
export type SublevelName = (typeof SUBLEVEL_NAMES)[number];
/** Name of the LevelDB directory inside the node's state directory. */
export const DB_DIR = "db";
/** Most operations in one batch. */
export const MAX_BATCH_OPS = 10_000;
/**
 * LevelDB's write buffer (its in-memory table) and block cache, in bytes. classic-level's defaults,
 * 4 MiB and 8 MiB, are far above a node's data (kilobytes to a few MiB), and both fill up as the node
 * runs and stay: a process that wrote 4 MiB held ~4 MiB more private memory with the defaults than
 * with these (docs/BENCHMARKS.md, "Idle memory").
 */
export const DB_WRITE_BUFFER_BYTES = 256 * 1024;
export const DB_CACHE_BYTES = 256 * 1024;

const openSublevel = (db: Level<string, string>, name: SublevelName) => db.sublevel(name);
/** One sublevel: utf8 keys and values (JSON text). */
export type Sublevel = ReturnType<typeof openSublevel>;

/** One operation of a multi-key change. `value` is any JSON-encodable value. */
export type StoreOp =
  | { readonly type: "put"; readonly sublevel: SublevelName; readonly key: string; readonly value: unknown }
  | { readonly type: "del"; readonly sublevel: SublevelName; readonly key: string };

/** What the database records about the node's key (the private part stays in node.key). */
export interface IdentityRecord {
  /** Public key, lowercase hex. */
  readonly publicKey: string;
  readonly fingerprint: string;
  readonly createdMs: number;
}

const identitySchema = v.strictObject({
  publicKey: v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/)),
  fingerprint: v.pipe(v.string(), v.startsWith("ed25519:"), v.maxLength(64)),
  createdMs: v.pipe(v.number(), v.safeInteger(), v.minValue(0)),
});
const IDENTITY_KEY = "public";

/** An open node store. Close it when done; only one may be open per directory. */
export class NodeStore {
  /** The node's state directory. */
  readonly dir: string;
  /** The root database (prefer the sublevels and `batch`). */
  readonly db: Level<string, string>;
  /** The persisted command seen-set. */
  readonly commands: CommandSeenSet;
  /** The audit log. */
  readonly audit: AuditLog;
  /** Join tokens (bootstrap/'s LevelDB-backed TokenStore over the `tokens` sublevel). */
  readonly tokens: TokenStore;
  readonly #sublevels: ReadonlyMap<SublevelName, Sublevel>;

  private constructor(
    dir: string,
    db: Level<string, string>,
    sublevels: Map<SublevelName, Sublevel>,
    audit: AuditLog,
  ) {
    this.dir = dir;
    this.db = db;
    this.#sublevels = sublevels;
    this.commands = new CommandSeenSet(this.sublevel("commands"));
    this.audit = audit;
    this.tokens = levelTokenStore(this.sublevel("tokens"));
  }

  /** Open (creating if needed) the store in `dir`. StoreLockedError if it is already open. */
  static async open(dir: string): Promise<NodeStore> {
    await mkdir(dir, { recursive: true, mode: STATE_DIR_MODE });
    const location = join(dir, DB_DIR);
    const db = new level.Level<string, string>(location, {
      writeBufferSize: DB_WRITE_BUFFER_BYTES,
      cacheSize: DB_CACHE_BYTES,
    });
    try {
      await db.open();
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause;
      if (cause?.code === "LEVEL_LOCKED")
        throw new StoreLockedError(`${location} is in use by another process (is ringd already running?)`, {
          cause: err,
        });
      throw new StoreError(`cannot open the node database at ${location}`, { cause: err });
    }
    const sublevels = new Map<SublevelName, Sublevel>();
    for (const name of SUBLEVEL_NAMES) sublevels.set(name, openSublevel(db, name));
    const audit = await AuditLog.open(sublevels.get("audit")!);
    return new NodeStore(dir, db, sublevels, audit);
  }

  /** The sublevel for one concern. */
  sublevel(name: SublevelName): Sublevel {
    const s = this.#sublevels.get(name);
    if (s === undefined) throw new InvalidValueError(`no sublevel named "${name}"`);
    return s;
  }

  /** Read and schema-check one JSON value; undefined when absent, CorruptValueError when bad. */
  async getJson<T>(
    name: SublevelName,
    key: string,
    schema: v.GenericSchema<unknown, T>,
  ): Promise<T | undefined> {
    const raw = await this.sublevel(name).get(checkKey(key));
    return raw === undefined ? undefined : decodeValue(schema, raw, `${name}/${key}`);
  }

  /** Every [key, value] of a sublevel whose key starts with `prefix`, schema-checked. */
  async listJson<T>(
    name: SublevelName,
    prefix: string,
    schema: v.GenericSchema<unknown, T>,
  ): Promise<[string, T][]> {
    const out: [string, T][] = [];
    const range = { gte: prefix, lt: prefix + "\uffff" };
    for await (const [key, raw] of this.sublevel(name).iterator(range))
      out.push([key, decodeValue(schema, raw, `${name}/${key}`)]);
    return out;
  }

  /** Put one JSON value. */
  async putJson(name: SublevelName, key: string, value: unknown): Promise<void> {
    await this.batch([{ type: "put", sublevel: name, key, value }]);
  }

  /**
   * Apply several puts and deletes, across sublevels, as one atomic LevelDB write. Every key and
   * value is checked and encoded first: if any is refused, nothing is written.
   */
  async batch(ops: readonly StoreOp[], options: { sync?: boolean } = {}): Promise<void> {
    if (ops.length > MAX_BATCH_OPS)
      throw new InvalidValueError(`batch of ${ops.length} ops, at most ${MAX_BATCH_OPS}`);
    const encoded = ops.map((op) => {
      const sublevel = this.sublevel(op.sublevel);
      const key = checkKey(op.key);
      return op.type === "put"
        ? { type: "put" as const, sublevel, key, value: encodeValue(op.value, `${op.sublevel}/${op.key}`) }
        : { type: "del" as const, sublevel, key };
    });
    try {
      await this.db.batch(encoded, { sync: options.sync ?? true });
    } catch (err) {
      throw new StoreError("the batch was not written (nothing of it was applied)", { cause: err });
    }
  }

  /**
   * The node's identity: its key from node.key (made on first start), and its public part recorded
   * in the database. IdentityMismatchError if the key file holds another key than the one recorded
   * (a key file swapped under the node's state).
   */
  async loadIdentity(nowMs: number): Promise<Identity> {
    const identity = await loadOrCreateIdentity(this.dir);
    const publicKey = keyHex(identity.publicKey);
    const recorded = await this.getJson("identity", IDENTITY_KEY, identitySchema);
    if (recorded === undefined) {
      const record: IdentityRecord = {
        publicKey,
        fingerprint: fingerprint(identity.publicKey),
        createdMs: nowMs,
      };
      await this.putJson("identity", IDENTITY_KEY, record);
    } else if (recorded.publicKey !== publicKey) {
      throw new IdentityMismatchError(
        `${join(this.dir, "node.key")} holds key ${fingerprint(identity.publicKey)} but this node's database ` +
          `belongs to ${recorded.fingerprint}: restore the right key file, or start from an empty state directory`,
      );
    }
    return identity;
  }

  /** The recorded public identity, if the node has one yet. */
  async identityRecord(): Promise<IdentityRecord | undefined> {
    return this.getJson("identity", IDENTITY_KEY, identitySchema);
  }

  /** Remember a command id until `expiresMs`; false when already seen (see CommandSeenSet). */
  markCommandSeen(id: Uint8Array | string, expiresMs: number): Promise<boolean> {
    return this.commands.markSeen(id, expiresMs);
  }

  /** Forget seen commands that expired at or before `nowMs`; returns how many. */
  pruneExpired(nowMs: number): Promise<number> {
    return this.commands.pruneExpired(nowMs);
  }

  /** Append an audit entry; returns its key. */
  appendAudit(kind: string, detail: Record<string, unknown>, nowMs: number): Promise<string> {
    return this.audit.append(kind, detail, nowMs);
  }

  /** Close the database (sublevels close with it). */
  async close(): Promise<void> {
    await this.db.close();
  }
}

/** Open the node store in `dir` (see NodeStore.open). */
export function openStore(dir: string): Promise<NodeStore> {
  return NodeStore.open(dir);
}
