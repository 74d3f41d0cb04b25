import { describe, expect, it } from "vitest";
import {
  checkRingdChildPorts,
  RINGD_CHILD_STATE_DIR,
  RINGD_CHILD_TOKEN_FILE,
  RingdChildRequestError,
  ringdChildSpec,
} from "./self-host.ts";

const launcher = { command: ["/usr/bin/node", "/opt/enjin/ringd.js"], readOnlyPaths: ["/opt/enjin"] };
const input = {
  name: "ring1-a",
  launcher,
  listenHost: "127.0.0.1",
  transport: "zeromq" as const,
  childPorts: { firstPort: 21_000, lastPort: 21_099 },
  logLevel: "info",
  strategy: "unix-user",
};

describe("ringdChildSpec", () => {
  it("runs ringd start with the token file, relative state and children dirs, and listens on PORT", () => {
    const spec = ringdChildSpec(input);
    expect(spec.name).toBe("ring1-a");
    // Under unix-user it restarts into its cgroup beside the children it left running.
    expect(spec.driver).toEqual({ adoptDescendants: true });
    expect(ringdChildSpec({ ...input, strategy: "proc" }).driver).toBeUndefined();
    expect(spec.env).toBeUndefined();
    const args = spec.command.slice(5 + launcher.command.length);
    expect(spec.command.slice(0, 5)).toEqual([
      "/bin/sh",
      "-c",
      'h=$1; shift; exec "$@" --listen "$h:$PORT"',
      "ringd-child",
      "127.0.0.1",
    ]);
    expect(args).toEqual([
      "start",
      "--data-dir",
      RINGD_CHILD_STATE_DIR,
      "--join-token-file",
      RINGD_CHILD_TOKEN_FILE,
      "--children-dir",
      "children",
      "--child-ports",
      "21000-21099",
      "--name",
      "ring1-a",
      "--transport",
      "zeromq",
      "--log-level",
      "info",
    ]);
  });

  it("binds the install read-only into a jail", () => {
    expect(ringdChildSpec({ ...input, strategy: "jail" }).driver).toEqual({ roBinds: ["/opt/enjin"] });
  });

  it("refuses a listen host that is not an address or a name", () => {
    expect(() => ringdChildSpec({ ...input, listenHost: "a b;rm" })).toThrow(RingdChildRequestError);
  });
});

describe("checkRingdChildPorts", () => {
  const parent = { firstPort: 20_000, lastPort: 20_999 };
  it("takes a range outside the parent's", () => {
    expect(checkRingdChildPorts({ firstPort: 21_000, lastPort: 21_099 }, parent)).toEqual({
      firstPort: 21_000,
      lastPort: 21_099,
    });
  });
  it.each([
    [{ firstPort: 20_900, lastPort: 21_100 }, /overlaps this node's \(20000-20999\)/],
    [{ firstPort: 21_100, lastPort: 21_000 }, /is empty/],
    [{ firstPort: 0, lastPort: 10 }, /firstPort must be a port/],
    [{ firstPort: 21_000, lastPort: 70_000 }, /lastPort must be a port/],
  ])("refuses %j", (range, message) => {
    expect(() => checkRingdChildPorts(range, parent)).toThrow(message);
    expect(() => checkRingdChildPorts(range, parent)).toThrow(RingdChildRequestError);
  });
});
