import * as v from "valibot";
import { describe, expect, it } from "vitest";
import { generateIdentity, keyHex } from "../../protocol/index.ts";
import {
  BadChildEventError,
  boundText,
  createArgsSchema,
  encodeChildEvent,
  logsArgsSchema,
  nameArgsSchema,
  verifyChildEvent,
} from "./child-protocol.ts";

const node = generateIdentity(new Uint8Array(32).fill(1));
const other = generateIdentity(new Uint8Array(32).fill(2));
const event = {
  child: "web",
  strategy: "proc",
  reason: "exited 3 times in 5m",
  restarts: 3,
  atMs: 1_700_000_000_000,
};

describe("child events", () => {
  it("round-trip: the signer's own key verifies, and the event names it", () => {
    const data = encodeChildEvent(node, event);
    expect(data.length).toBeLessThanOrEqual(1_024); // MeshNode's MAX_PUBLISH_BYTES
    expect(verifyChildEvent(data, keyHex(node.publicKey))).toEqual({
      version: 1,
      node: keyHex(node.publicKey),
      ...event,
    });
  });

  it("refuses an event sent by another key, a changed byte, and malformed data", () => {
    const data = encodeChildEvent(node, event);
    expect(() => verifyChildEvent(data, keyHex(other.publicKey))).toThrow(/sent by/);
    const text = new TextDecoder().decode(data).replace('\\"restarts\\":3', '\\"restarts\\":0');
    expect(text).not.toBe(new TextDecoder().decode(data));
    expect(() => verifyChildEvent(new TextEncoder().encode(text), keyHex(node.publicKey))).toThrow(
      /bad signature/,
    );
    for (const bad of ["", "{}", "[1]", '{"event":"{}","signature":"x"}', "\xff"])
      expect(() => verifyChildEvent(new TextEncoder().encode(bad), keyHex(node.publicKey))).toThrow(
        BadChildEventError,
      );
  });

  it("bounds a long reason on a character boundary, so the event still fits a broadcast", () => {
    const data = encodeChildEvent(node, { ...event, reason: "é".repeat(1_000) });
    expect(data.length).toBeLessThanOrEqual(1_024);
    const back = verifyChildEvent(data, keyHex(node.publicKey));
    expect(back.reason.endsWith("...")).toBe(true);
    expect(new TextEncoder().encode(back.reason).length).toBeLessThanOrEqual(256);
    expect(boundText("short", 10)).toBe("short");
  });
});

describe("child command arguments", () => {
  it("takes a create request as one JSON argument and refuses other shapes", () => {
    const ok = v.safeParse(createArgsSchema, [
      JSON.stringify({ strategy: "proc", spec: { name: "web", command: ["/bin/true"] } }),
    ]);
    expect(ok.success).toBe(true);
    for (const bad of [[], ["{"], ["[]"], [JSON.stringify({ strategy: "proc" })], ["{}", "extra"]])
      expect(v.safeParse(createArgsSchema, bad).success).toBe(false);
    const unknownField = JSON.stringify({ strategy: "proc", spec: {}, image: "x" });
    expect(v.safeParse(createArgsSchema, [unknownField]).success).toBe(false);
  });

  it("takes a child name, and logs as lines or a cursor", () => {
    expect(v.safeParse(nameArgsSchema, ["web-1"]).success).toBe(true);
    for (const bad of [[], ["Web"], ["../x"], ["a".repeat(33)]])
      expect(v.safeParse(nameArgsSchema, bad).success).toBe(false);
    expect(v.safeParse(logsArgsSchema, ["web", '{"lines":100}']).success).toBe(true);
    expect(v.safeParse(logsArgsSchema, ["web", '{"cursor":null}']).success).toBe(true);
    const cursor = { offsetBytes: 10, rotatedId: "1:2:3", shrunkReads: 0 };
    expect(v.safeParse(logsArgsSchema, ["web", JSON.stringify({ cursor })]).success).toBe(true);
    for (const bad of ['{"lines":0}', '{"lines":100001}', '{"cursor":{"offsetBytes":-1}}', "{}"])
      expect(v.safeParse(logsArgsSchema, ["web", bad]).success).toBe(false);
  });
});
