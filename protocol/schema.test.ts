import fc from "fast-check";
import * as v from "valibot";
import { describe, expect, it } from "vitest";
import { payloadArbs } from "./arbitraries.test-support.ts";
import { SchemaError } from "./errors.ts";
import { passesQuickCheck, payloadSchemas, validatePayload } from "./schema.ts";
import { MessageType } from "./types.ts";

const types = Object.values(MessageType) as MessageType[];

/** A valid payload with one field replaced by anything, or removed; or anything at all. */
function corrupted(type: MessageType): fc.Arbitrary<unknown> {
  const field = payloadArbs[type].chain((valid) => {
    const keys = Object.keys(valid as object);
    return fc
      .record({ key: fc.constantFrom(...keys), junk: fc.option(fc.anything(), { nil: undefined }) })
      .map(({ key, junk }) => {
        const out: Record<string, unknown> = { ...(valid as object) };
        if (junk === undefined) delete out[key];
        else out[key] = junk;
        return out;
      });
  });
  return fc.oneof(field, fc.anything());
}

describe("payload schemas", () => {
  it("the quick check gives safeParse's verdict on valid payloads of every type", () => {
    for (const type of types) {
      fc.assert(
        fc.property(payloadArbs[type], (value) => {
          expect(v.safeParse(payloadSchemas[type], value).success).toBe(true);
          expect(passesQuickCheck(type, value)).toBe(true);
        }),
        { numRuns: 50 },
      );
    }
  });

  it("the quick check never passes what safeParse refuses, and validatePayload throws exactly then", () => {
    let refused = 0;
    for (const type of types) {
      fc.assert(
        fc.property(corrupted(type), (value) => {
          const full = v.safeParse(payloadSchemas[type], value).success;
          expect(passesQuickCheck(type, value)).toBe(full);
          if (full) expect(() => validatePayload(type, value)).not.toThrow();
          else {
            refused++;
            expect(() => validatePayload(type, value)).toThrow(SchemaError);
          }
        }),
        { numRuns: 100 },
      );
    }
    // The corruptions must really exercise refusals, or the comparison above says little.
    expect(refused).toBeGreaterThan(types.length * 50);
  });

  it("a refused payload's error names the field and the problem", () => {
    expect(() =>
      validatePayload(MessageType.Broadcast, { topic: "", data: new Uint8Array(1), sentAtMs: 1 }),
    ).toThrow(/topic/);
  });
});
