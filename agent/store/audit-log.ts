/**
 * The node's audit log: append-only entries keyed by time and a counter,
 * `<atMs, 16 digits>-<seq, 10 digits>`, so they sort by time and never collide (the counter carries
 * on from the last entry after a reopen). Values are JSON `{kind, atMs, detail}`.
 */
import * as v from "valibot";
import { InvalidValueError } from "./errors.ts";
import { decodeValue, encodeValue } from "./json-value.ts";

/** Longest audit kind (characters), a kebab-case label such as "token-redeemed". */
export const MAX_AUDIT_KIND_CHARS = 63;
/** Most entries one readAudit returns. */
export const MAX_AUDIT_READ = 10_000;

/** One audit entry. */
export interface AuditEntry {
  readonly key: string;
  readonly kind: string;
  readonly atMs: number;
  readonly detail: Record<string, unknown>;
}

/** The table operations the audit log needs (the `audit` sublevel). */
export interface AuditTable {
  put(key: string, value: string): Promise<void>;
  keys(options: { reverse: boolean; limit: number }): AsyncIterable<string>;
  iterator(options: { gte: string; limit: number }): AsyncIterable<[string, string]>;
}

const entrySchema = v.strictObject({
  kind: v.pipe(v.string(), v.regex(/^[a-z0-9][a-z0-9-]*$/), v.maxLength(MAX_AUDIT_KIND_CHARS)),
  atMs: v.pipe(v.number(), v.safeInteger(), v.minValue(0)),
  detail: v.record(v.string(), v.unknown()),
});

const pad = (n: number, digits: number) => String(n).padStart(digits, "0");

/** Append and read audit entries over one table. */
export class AuditLog {
  readonly #table: AuditTable;
  #seq = 0;

  private constructor(table: AuditTable) {
    this.#table = table;
  }

  /** An AuditLog whose counter continues after the last stored entry. */
  static async open(table: AuditTable): Promise<AuditLog> {
    const log = new AuditLog(table);
    for await (const key of table.keys({ reverse: true, limit: 1 })) {
      const seq = Number(key.slice(key.indexOf("-") + 1));
      if (Number.isSafeInteger(seq)) log.#seq = seq + 1;
    }
    return log;
  }

  /** Append `{kind, atMs: nowMs, detail}`; returns its key. */
  async append(kind: string, detail: Record<string, unknown>, nowMs: number): Promise<string> {
    const parsed = v.safeParse(entrySchema, { kind, atMs: nowMs, detail });
    if (!parsed.success)
      throw new InvalidValueError(`audit entry refused: ${parsed.issues.map((i) => i.message).join("; ")}`);
    const key = `${pad(nowMs, 16)}-${pad(this.#seq++, 10)}`;
    await this.#table.put(key, encodeValue(parsed.output, `audit/${key}`));
    return key;
  }

  /** Entries at or after `sinceMs`, oldest first, at most `limit` (≤ MAX_AUDIT_READ). */
  async read(sinceMs = 0, limit = 100): Promise<AuditEntry[]> {
    const out: AuditEntry[] = [];
    const gte = `${pad(Math.max(0, sinceMs), 16)}-`;
    for await (const [key, raw] of this.#table.iterator({ gte, limit: Math.min(limit, MAX_AUDIT_READ) })) {
      const e = decodeValue(entrySchema, raw, `audit/${key}`);
      out.push({ key, kind: e.kind, atMs: e.atMs, detail: e.detail });
    }
    return out;
  }
}
