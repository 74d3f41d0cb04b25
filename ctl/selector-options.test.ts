import { describe, expect, it } from "vitest";
import { fingerprint, generateIdentity, keyHex } from "../protocol/index.ts";
import { UsageError } from "./errors.ts";
import {
  type KnownNode,
  MIN_NODE_PART_CHARS,
  nodeRefsToLookUp,
  parseSelector,
  resolveNodeRef,
} from "./selector-options.ts";

const node = (seedByte: number, name?: string): KnownNode => {
  const { publicKey } = generateIdentity(new Uint8Array(32).fill(seedByte));
  return { id: keyHex(publicKey), fingerprint: fingerprint(publicKey), ...(name ? { name } : {}) };
};
const self = node(1, "web-01");
const other = node(2);
const known = [self, other];
const hexOf = (k: Uint8Array) => Buffer.from(k).toString("hex");

function usageError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    return (err as Error).message;
  }
  throw new Error("expected a UsageError");
}

describe("resolveNodeRef", () => {
  it("takes a hex key as it is, known or not, in either case", () => {
    const stranger = keyHex(generateIdentity(new Uint8Array(32).fill(9)).publicKey);
    expect(resolveNodeRef(stranger, known)).toBe(stranger);
    expect(resolveNodeRef(other.id.toUpperCase(), [])).toBe(other.id);
  });

  it("finds a node by its fingerprint, with or without ed25519:, and the local node by name", () => {
    expect(resolveNodeRef(other.fingerprint, known)).toBe(other.id);
    expect(resolveNodeRef(other.fingerprint.slice("ed25519:".length), known)).toBe(other.id);
    expect(resolveNodeRef("web-01", known)).toBe(self.id);
  });

  it("finds a node by a part of its fingerprint, as ringctl nodes shows it, or a start of its hex key", () => {
    expect(resolveNodeRef(other.fingerprint.slice(8, 28), known)).toBe(other.id);
    expect(resolveNodeRef(other.fingerprint.slice(20, 20 + MIN_NODE_PART_CHARS), known)).toBe(other.id);
    expect(resolveNodeRef(self.id.slice(0, 10), known)).toBe(self.id);
  });

  it("refuses an unknown node, or a part too short to look for, saying where to look", () => {
    expect(usageError(() => resolveNodeRef("zzzzzzzzzz", known))).toBe(
      "--node zzzzzzzzzz: no node the local ringd knows has that hex key, fingerprint or name, nor a " +
        "fingerprint holding it or a hex key starting with it; 'ringctl nodes' lists the nodes it knows",
    );
    const short = other.fingerprint.slice(8, 8 + MIN_NODE_PART_CHARS - 1);
    expect(usageError(() => resolveNodeRef(short, known))).toMatch(
      new RegExp(`^--node ${short}: .*at least ${MIN_NODE_PART_CHARS} characters.*'ringctl nodes'`),
    );
  });

  it("refuses a part that several nodes have, naming them", () => {
    const twins: KnownNode[] = [
      { id: "a".repeat(64), fingerprint: "ed25519:abcdefgh1111" },
      { id: "b".repeat(64), fingerprint: "ed25519:abcdefgh2222" },
    ];
    expect(usageError(() => resolveNodeRef("abcdefgh", twins))).toBe(
      "--node abcdefgh: 2 nodes match (abcdefgh1111, abcdefgh2222); give more of the fingerprint, or the hex key",
    );
    // A name the same as another node's fingerprint part is still ambiguous, not silently one.
    const named: KnownNode[] = [{ ...twins[0]!, name: "abcdefgh2222" }, twins[1]!];
    expect(usageError(() => resolveNodeRef("abcdefgh2222", named))).toMatch(/2 nodes match/);
  });
});

describe("parseSelector", () => {
  it("turns every option into its selector field; an empty set selects every node", () => {
    expect(parseSelector({}, known)).toEqual({});
    const s = parseSelector(
      {
        ring: "1",
        node: ["web-01", other.fingerprint.slice(8, 28)],
        compartment: ["eu", "dc1"],
        tier: ["web"],
        label: ["web", "canary"],
      },
      known,
    );
    expect({ ...s, nodes: s.nodes?.map(hexOf) }).toEqual({
      ring: 1,
      nodes: [self.id, other.id],
      compartment: ["eu", "dc1"],
      tiers: ["web"],
      labels: ["web", "canary"],
    });
  });

  it("refuses a ring that is not 0, 1 or 2, and an empty selector where one is required", () => {
    expect(usageError(() => parseSelector({ ring: "3" }, known))).toBe('--ring must be 0, 1 or 2, not "3"');
    expect(usageError(() => parseSelector({}, known, "ringctl child stop"))).toBe(
      "'ringctl child stop' needs a selector naming its target node(s): --node, --ring, --tier, --label or --compartment",
    );
    expect(parseSelector({ tier: ["db"] }, known, "ringctl child stop")).toEqual({ tiers: ["db"] });
  });
});

describe("nodeRefsToLookUp", () => {
  it("lists only the --node values that are not full hex keys", () => {
    expect(nodeRefsToLookUp({ ring: "1" })).toEqual([]);
    expect(nodeRefsToLookUp({ node: [self.id, "web-01"] })).toEqual(["web-01"]);
  });
});
