import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import type { ChildHandle } from "./driver.ts";
import { ChildStartError, HandleStateError } from "./errors.ts";
import { JAIL_HANDLE_VERSION, readJailState } from "./jail-handle.ts";
import { readJailPid, type ShimExit } from "./jail-host.ts";

const never = new Promise<ShimExit>(() => {});

describe("readJailPid", () => {
  it("reads the child pid from bwrap's first status line, however it is split", async () => {
    const status = new PassThrough();
    const pid = readJailPid(status, never, 10_000);
    status.write('{ "child-pid": 4');
    status.write('2, "pid-namespace": 4026532181 }\n{ "exit-code": 0 }\n');
    expect(await pid).toBe(42);
  });
  it("refuses a line without a pid", async () => {
    const status = new PassThrough();
    const pid = readJailPid(status, never, 10_000);
    status.write("not json\n");
    await expect(pid).rejects.toThrow(ChildStartError);
  });
  it("fails when the shim exits during setup, or when bwrap says nothing in time", async () => {
    await expect(
      readJailPid(new PassThrough(), Promise.resolve({ code: 1, signal: null }), 10_000),
    ).rejects.toThrow(/exited during setup \(status 1\)/);
    await expect(readJailPid(new PassThrough(), never, 5)).rejects.toThrow(
      /did not report the jail within 5 ms/,
    );
  });
});

describe("readJailState", () => {
  const state = {
    shimStartTicks: 100,
    bootId: "b",
    initPid: 12,
    initStartTicks: 101,
    uid: 990,
    gid: 990,
    user: "enjail-web",
    dir: "/srv/c/web",
  };
  const handle: ChildHandle = {
    driver: "jail",
    name: "web",
    version: JAIL_HANDLE_VERSION,
    pid: 10,
    startedMs: 0,
    state,
  };

  it("reads a saved handle back", () => {
    expect(readJailState(JSON.parse(JSON.stringify(handle)))).toEqual(state);
  });
  it("refuses another driver's handle, another version and malformed state", () => {
    for (const bad of [
      { ...handle, driver: "proc" },
      { ...handle, version: 2 },
      { ...handle, pid: 0 },
      { ...handle, state: { ...state, initPid: "12" } },
      { ...handle, state: { ...state, bootId: undefined } },
      { ...handle, state: { ...state, user: 5 } },
    ])
      expect(() => readJailState(bad), JSON.stringify(bad)).toThrow(HandleStateError);
  });
});
