import { describe, expect, it } from "vitest";
import { InvalidSpecError } from "./errors.ts";
import { checkChildName, childSpec } from "./spec.ts";

describe("childSpec", () => {
  it("returns a clean copy of a good spec", () => {
    const input = {
      name: "web-1",
      command: ["/usr/bin/node", "app.js"],
      env: { NODE_ENV: "production" },
      limits: { memoryBytes: 268_435_456, pids: 64 },
      driver: { kernel: "/boot/vmlinuz" },
    };
    const spec = childSpec(input);
    expect(spec).toEqual(input);
    expect(spec.command).not.toBe(input.command);
    expect(childSpec({ name: "a", command: ["true"] })).toEqual({ name: "a", command: ["true"] });
  });

  const refused: [string, unknown, RegExp][] = [
    ["not an object", null, /must be an object/],
    ["an unknown field", { name: "a", command: ["x"], user: "root" }, /unknown field "user"/],
    ["an upper-case name", { name: "Web", command: ["x"] }, /child name/],
    ["a long name", { name: "a".repeat(33), command: ["x"] }, /child name/],
    ["a name starting with -", { name: "-a", command: ["x"] }, /child name/],
    ["no command", { name: "a" }, /command must be a list/],
    ["an empty command", { name: "a", command: [] }, /command must be a list/],
    ["a command as one string", { name: "a", command: "/bin/true" }, /command must be a list/],
    ["a NUL in an argument", { name: "a", command: ["x", "a\0b"] }, /command\[1\] must be a string/],
    ["an empty program", { name: "a", command: [""] }, /command\[0\] \(the program\)/],
    ["env as a list", { name: "a", command: ["x"], env: ["A=1"] }, /env must be an object/],
    ["a bad env name", { name: "a", command: ["x"], env: { "A-B": "1" } }, /env name "A-B"/],
    ["a number env value", { name: "a", command: ["x"], env: { A: 1 } }, /env A must be a string/],
    [
      "an unknown limit",
      { name: "a", command: ["x"], limits: { disk: 1 } },
      /limits has an unknown field "disk"/,
    ],
    ["a zero limit", { name: "a", command: ["x"], limits: { pids: 0 } }, /limits pids must be a positive/],
    ["driver as a string", { name: "a", command: ["x"], driver: "vm" }, /driver settings must be an object/],
    [
      "a huge spec",
      {
        name: "a",
        command: ["x"],
        env: Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`V${i}`, "x".repeat(4000)])),
      },
      /at most 32768/,
    ],
  ];
  for (const [what, input, message] of refused)
    it(`refuses ${what} with InvalidSpecError`, () => {
      expect(() => childSpec(input)).toThrow(InvalidSpecError);
      expect(() => childSpec(input)).toThrow(message);
    });

  it("checkChildName accepts the documented shape only", () => {
    expect(checkChildName("a")).toBe("a");
    expect(checkChildName("0-web")).toBe("0-web");
    expect(() => checkChildName("web_1")).toThrow(InvalidSpecError);
  });
});
