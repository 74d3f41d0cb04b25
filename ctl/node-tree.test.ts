import { describe, expect, it } from "vitest";
import { nodeTree } from "./node-tree.ts";

const row = (id: string, ring: number | null, issuer = "root") => ({
  id,
  certificate: ring === null ? null : { ring, issuer },
});

describe("nodeTree", () => {
  it("puts every node under its issuer, depth first, ordered by ring then id", () => {
    const rows = [
      row("r2-app", 2, "r1-b"),
      row("r1-b", 1, "seed-a"),
      row("seed-b", 0),
      row("r1-a", 1, "seed-a"),
      row("seed-a", 0),
      row("r1-c", 1, "seed-b"),
      row("nocert", null),
    ];
    expect(nodeTree(rows).map((p) => `${"  ".repeat(p.depth)}${p.row.id}`)).toEqual([
      "seed-a",
      "  r1-a",
      "  r1-b",
      "    r2-app",
      "seed-b",
      "  r1-c",
      "nocert",
    ]);
  });

  it("keeps a node whose issuer it does not know at the top", () => {
    expect(nodeTree([row("r1-x", 1, "unknown"), row("seed", 0)]).map((p) => [p.row.id, p.depth])).toEqual([
      ["seed", 0],
      ["r1-x", 0],
    ]);
  });

  it("places each row once even when issuers loop", () => {
    const placed = nodeTree([row("a", 1, "b"), row("b", 1, "a"), row("c", 1, "c")]);
    expect(placed.map((p) => p.row.id).sort()).toEqual(["a", "b", "c"]);
  });
});
