/**
 * The persisted seen-set of commands: a command id is remembered until its expiry, so a replayed
 * command is refused across restarts. Two keys per id, written in one batch:
 *   `s:<id hex>`                → {"expiresMs": n}   (membership)
 *   `x:<expiresMs, 16 digits>:<id hex>` → ""       (expiry index, so pruning reads only what expired)
 * Marks of one id are serialized, so of two racing marks exactly one returns true.
 */
import * as v from "valibot";
import { KeyedMutex } from "../../bootstrap/index.ts";
import { InvalidValueError } from "./errors.ts";
import { decodeValue } from "./json-value.ts";

/** Longest command id accepted (bytes); a message id is 16. */
export const MAX_COMMAND_ID_BYTES = 64;
/** Most seen-set entries deleted in one prune batch. */
export const PRUNE_BATCH_ENTRIES = 1000;
/** Digits of the zero-padded expiry in index keys (enough for any safe integer). */
const EXPIRY_DIGITS = 16;

/** The table operations the seen-set needs (the `commands` sublevel). */
export interface SeenTable {
  get(key: string): Promise<string | undefined>;
  batch(
    ops: ({ type: "put"; key: string; value: string } | { type: "del"; key: string })[],
    options: { sync: boolean },
  ): Promise<void>;
  keys(options: { gte: string; lt: string; limit: number }): AsyncIterable<string>;
}

const entrySchema = v.strictObject({ expiresMs: v.pipe(v.number(), v.safeInteger(), v.minValue(0)) });

function idHex(id: Uint8Array | string): string {
  const hex =
    typeof id === "string" ? id : Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString("hex");
  if (!/^[0-9a-f]+$/.test(hex) || hex.length % 2 !== 0 || hex.length > 2 * MAX_COMMAND_ID_BYTES)
    throw new InvalidValueError(
      `command id must be 1..${MAX_COMMAND_ID_BYTES} bytes (lowercase hex as a string)`,
    );
  return hex;
}

function expiryKey(expiresMs: number, hex: string): string {
  return `x:${String(expiresMs).padStart(EXPIRY_DIGITS, "0")}:${hex}`;
}

/** The seen-set over one table. */
export class CommandSeenSet {
  readonly #table: SeenTable;
  readonly #mutex = new KeyedMutex();

  constructor(table: SeenTable) {
    this.#table = table;
  }

  /**
   * Remember command `id` until `expiresMs`. Resolves false when it was already remembered (a
   * replay), true when this call recorded it; the record is on disk before it resolves.
   */
  async markSeen(id: Uint8Array | string, expiresMs: number): Promise<boolean> {
    const hex = idHex(id);
    if (!Number.isSafeInteger(expiresMs) || expiresMs < 0)
      throw new InvalidValueError(`expiresMs must be a non-negative safe integer, got ${expiresMs}`);
    return this.#mutex.run(hex, async () => {
      const key = `s:${hex}`;
      const raw = await this.#table.get(key);
      if (raw !== undefined) {
        decodeValue(entrySchema, raw, `commands/${key}`); // corrupt entries are reported, not ignored
        return false;
      }
      await this.#table.batch(
        [
          { type: "put", key, value: JSON.stringify({ expiresMs }) },
          { type: "put", key: expiryKey(expiresMs, hex), value: "" },
        ],
        { sync: true },
      );
      return true;
    });
  }

  /** True when `id` is remembered. */
  async has(id: Uint8Array | string): Promise<boolean> {
    return (await this.#table.get(`s:${idHex(id)}`)) !== undefined;
  }

  /** Forget every id whose expiry is at or before `nowMs`; returns how many. */
  async pruneExpired(nowMs: number): Promise<number> {
    const lt = `x:${String(Math.max(0, Math.floor(nowMs)) + 1).padStart(EXPIRY_DIGITS, "0")}:`;
    let pruned = 0;
    for (;;) {
      const ops: { type: "del"; key: string }[] = [];
      for await (const key of this.#table.keys({ gte: "x:", lt, limit: PRUNE_BATCH_ENTRIES })) {
        const hex = key.slice(2 + EXPIRY_DIGITS + 1);
        ops.push({ type: "del", key }, { type: "del", key: `s:${hex}` });
      }
      if (ops.length === 0) return pruned;
      await this.#table.batch(ops, { sync: false });
      pruned += ops.length / 2;
    }
  }
}
