/**
 * Values in the node's store are JSON, checked against a valibot schema on every read: a value that
 * does not parse or does not fit is a CorruptValueError naming its table and key, never a crash
 * further on. Keys are printable strings of bounded length.
 */
import * as v from "valibot";
import { CorruptValueError, InvalidValueError } from "./errors.ts";

/** Largest stored value (JSON characters). */
export const MAX_STORE_VALUE_CHARS = 64 * 1024;
/** Longest key (characters). */
export const MAX_STORE_KEY_CHARS = 512;

const KEY_PATTERN = /^[\x21-\x7e]+$/;

/** Throw InvalidValueError unless `key` is 1..MAX_STORE_KEY_CHARS printable ASCII characters. */
export function checkKey(key: string): string {
  if (typeof key !== "string" || key.length > MAX_STORE_KEY_CHARS || !KEY_PATTERN.test(key))
    throw new InvalidValueError(`store key must be 1..${MAX_STORE_KEY_CHARS} printable ASCII characters`);
  return key;
}

/** JSON text of `value`; InvalidValueError if it cannot be encoded or is too long. */
export function encodeValue(value: unknown, where: string): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (cause) {
    throw new InvalidValueError(`${where}: value cannot be encoded as JSON`, { cause });
  }
  if (text === undefined) throw new InvalidValueError(`${where}: value cannot be encoded as JSON`);
  if (text.length > MAX_STORE_VALUE_CHARS)
    throw new InvalidValueError(`${where}: value is ${text.length} chars, at most ${MAX_STORE_VALUE_CHARS}`);
  return text;
}

/** Parse and check a stored value; CorruptValueError names `where` and says what was wrong. */
export function decodeValue<T>(schema: v.GenericSchema<unknown, T>, raw: string, where: string): T {
  if (raw.length > MAX_STORE_VALUE_CHARS)
    throw new CorruptValueError(
      `${where}: stored value is ${raw.length} chars, at most ${MAX_STORE_VALUE_CHARS}`,
    );
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (cause) {
    throw new CorruptValueError(`${where}: stored value is not JSON`, { cause });
  }
  const result = v.safeParse(schema, json);
  if (!result.success)
    throw new CorruptValueError(
      `${where}: stored value breaks its schema: ${result.issues.map((i) => i.message).join("; ")}`,
    );
  return result.output;
}
