import { describe, expect, it } from "vitest";
import type { ChildHandle } from "./driver.ts";
import { HandleStateError } from "./errors.ts";
import { KVM_PROBE_FIRMWARE_BYTES, kvmProbeFirmware } from "./vm-kvm-probe.ts";
import { parseStatStart, vmStateOf } from "./vm-state.ts";

const state = {
  startTicks: 12_345,
  bootId: "0b5e4f7e-6c1a-4f43-9c7e-0d6f3a1b2c3d",
  dir: "/srv/c/web",
  ctlSocket: "/srv/c/web/ctl.sock",
  qmpSocket: "/srv/c/web/qmp.sock",
  pidFile: "/srv/c/web/qemu.pid",
  accel: "tcg",
  machine: "q35",
  hostPort: 40_001,
  guestPort: 8080,
};
const handle = (over: Partial<ChildHandle> = {}, s: Record<string, unknown> = {}): ChildHandle => ({
  driver: "vm",
  name: "web",
  version: 1,
  pid: 4242,
  startedMs: 0,
  state: { ...state, ...s },
  ...over,
});

describe("vmStateOf", () => {
  it("reads a well-formed handle", () => {
    expect(vmStateOf(handle())).toEqual(state);
  });

  it.each([
    [{ driver: "proc" }, {}, /driver "proc" given to vm/],
    [{ version: 2 }, {}, /version 2 is not one this agent reads/],
    [{ pid: 0 }, {}, /malformed/],
    [{}, { startTicks: -1 }, /malformed/],
    [{}, { bootId: "" }, /malformed/],
    [{}, { qmpSocket: "qmp.sock" }, /malformed/],
    [{}, { accel: "hvf" }, /malformed/],
    [{}, { machine: "pc" }, /malformed/],
  ])("refuses %j %j", (over, s, message) => {
    expect(() => vmStateOf(handle(over, s))).toThrow(HandleStateError);
    expect(() => vmStateOf(handle(over, s))).toThrow(message);
  });
});

describe("parseStatStart", () => {
  it("counts fields from the last parenthesis, so a command with spaces and parentheses parses", () => {
    const rest = Array.from({ length: 49 }, (_, i) => String(i + 3));
    rest[0] = "S";
    rest[19] = "987654"; // field 22
    expect(parseStatStart(`77 (qemu (x) y) ${rest.join(" ")}`)).toEqual({ state: "S", startTicks: 987_654 });
  });

  it("gives null for text of another shape", () => {
    expect(parseStatStart("garbage")).toBeNull();
  });
});

describe("kvmProbeFirmware", () => {
  it("is 64 KiB with the code at 0 and a far jump to it at the reset vector", () => {
    const image = kvmProbeFirmware();
    expect(image.length).toBe(KVM_PROBE_FIRMWARE_BYTES);
    expect(image[0]).toBe(0xfa); // cli
    expect(image.subarray(0xfff0, 0xfff5).toString("hex")).toBe("ea000000f0"); // ljmp $0xf000, $0
    expect(image.subarray(0x81, 0x85).toString("hex")).toBe("b031e6f4"); // mov $0x31, %al; out %al, $0xf4
    expect(image.readUInt32LE(0xaa)).toBe(0xf0088); // gdtr base: the GDT inside the image
  });
});
