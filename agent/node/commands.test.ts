/**
 * The actions a node carries out are exactly those the mesh's per-action rule (rings'
 * COMMAND_ACTIONS) knows, so no action escapes the rule and the rule names none a node lacks.
 */
import { describe, expect, it } from "vitest";
import { COMMAND_ACTIONS } from "../../rings/index.ts";
import { ACTIONS } from "./commands.ts";

describe("node actions", () => {
  it("are the actions rings' command rule knows, each once", () => {
    expect([...ACTIONS].sort()).toEqual(Object.keys(COMMAND_ACTIONS).sort());
  });
});
