import { describe, expect, it } from "vitest";
import type { ChildSpec } from "./driver.ts";
import { InvalidSpecError, SupervisorConfigError, UnenforceableLimitError } from "./errors.ts";
import {
  checkVmSpec,
  DEFAULT_VM_MEMORY_BYTES,
  kernelCmdline,
  MAX_KERNEL_CMDLINE_BYTES,
  MIN_VM_MEMORY_BYTES,
  parseVmSpecOptions,
  type QemuPlan,
  qemuArgs,
  qemuOptValue,
  type VmBounds,
  vmPaths,
} from "./vm-args.ts";

const MIB = 1024 * 1024;
const bounds: VmBounds = { maxMemoryBytes: 8 * 1024 * MIB, maxVcpus: 4 };
const spec = (over: Partial<ChildSpec> = {}, driver: Record<string, unknown> = {}): ChildSpec => ({
  name: "web",
  command: [],
  driver: { kernel: "/g/vmlinuz", initrd: "/g/initrd.gz", guestPort: 8080, ...driver },
  ...over,
});
const planOf = (s: ChildSpec, over: Partial<QemuPlan> = {}): QemuPlan => ({
  ...checkVmSpec(s, bounds),
  accel: "tcg",
  hostAddress: "127.0.0.1",
  hostPort: 40_001,
  paths: vmPaths("/srv/children/web"),
  logPath: "/var/log/enjin/web/current",
  ...over,
});
/** The value following `flag` each time it appears. */
const valuesOf = (args: string[], flag: string) => args.flatMap((a, i) => (a === flag ? [args[i + 1]] : []));

describe("parseVmSpecOptions", () => {
  it("reads kernel, initrd, guestPort and defaults append and machine", () => {
    expect(parseVmSpecOptions(spec())).toEqual({
      kernel: "/g/vmlinuz",
      initrd: "/g/initrd.gz",
      guestPort: 8080,
      append: [],
      machine: "q35",
    });
  });

  it.each([
    [{ kernel: undefined }, /driver.kernel must be the absolute path/],
    [{ kernel: "vmlinuz" }, /driver.kernel must be the absolute path/],
    [{ initrd: "/g/../etc/shadow" }, /driver.initrd must be the absolute path/],
    [{ guestPort: 0 }, /guestPort must be the port/],
    [{ guestPort: 70_000 }, /guestPort must be the port/],
    [{ guestPort: "8080" }, /guestPort must be the port/],
    [{ append: ["a b"] }, /driver.append must be an array/],
    [{ append: 'x="y"' }, /driver.append must be an array/],
    [{ machine: "pc-i440fx" }, /driver.machine must be one of q35, microvm/],
    [{ kernal: "/g/vmlinuz" }, /unknown driver option "kernal"/],
    [{ firmware: "qboot.rom" }, /driver.firmware must be the absolute path/],
  ])("refuses %j", (driver, message) => {
    const bad = spec({}, driver);
    expect(() => parseVmSpecOptions(bad)).toThrow(InvalidSpecError);
    expect(() => parseVmSpecOptions(bad)).toThrow(message);
  });
});

describe("checkVmSpec", () => {
  it("gives a guest the default RAM and one vCPU when the spec sets no limits", () => {
    const plan = checkVmSpec(spec(), bounds);
    expect(plan.memoryMiB).toBe(DEFAULT_VM_MEMORY_BYTES / MIB);
    expect(plan.vcpus).toBe(1);
  });

  it("maps memoryBytes to whole MiB (rounded down) and cpuMillis to vCPUs", () => {
    const plan = checkVmSpec(spec({ limits: { memoryBytes: 512 * MIB + 123, cpuMillis: 2000 } }), bounds);
    expect(plan.memoryMiB).toBe(512);
    expect(plan.vcpus).toBe(2);
  });

  it.each([
    [{ memoryBytes: MIN_VM_MEMORY_BYTES - 1 }, InvalidSpecError, /memoryBytes is the guest's RAM/],
    [{ memoryBytes: 1024 ** 4 }, InvalidSpecError, /this host's bound/],
    [{ memoryBytes: 1.5 }, InvalidSpecError, /memoryBytes/],
    [{ cpuMillis: 1500 }, UnenforceableLimitError, /whole vCPUs/],
    [{ cpuMillis: 8000 }, InvalidSpecError, /at most 4/],
    [{ cpuMillis: 0 }, InvalidSpecError, /at least 1/],
    [{ pids: 100 }, UnenforceableLimitError, /limits.pids cannot be enforced/],
    [{ openFiles: 100 }, UnenforceableLimitError, /limits.openFiles cannot be enforced/],
  ])("refuses limits %j", (limits, cls, message) => {
    expect(() => checkVmSpec(spec({ limits }), bounds)).toThrow(cls);
    expect(() => checkVmSpec(spec({ limits }), bounds)).toThrow(message);
  });

  it("refuses a bad child name", () => {
    expect(() => checkVmSpec(spec({ name: "Web!" }), bounds)).toThrow(InvalidSpecError);
  });
});

describe("kernelCmdline", () => {
  const opts = parseVmSpecOptions(spec({}, { append: ["mitigations=off"] }));

  it("puts the base options, append, PORT and the env in order", () => {
    expect(kernelCmdline(spec({ env: { MODE: "prod", EMPTY: "" } }), opts)).toBe(
      "console=ttyS0 quiet panic=-1 mitigations=off PORT=8080 MODE=prod EMPTY=",
    );
  });

  it("runs command[0] as the guest's init and passes its arguments after --", () => {
    expect(kernelCmdline(spec({ command: ["/sbin/app", "--fast", "x=1"] }), opts)).toBe(
      "console=ttyS0 quiet panic=-1 rdinit=/sbin/app mitigations=off PORT=8080 -- --fast x=1",
    );
  });

  it.each([
    [{ env: { PORT: "1" } }, /PORT is set by the kernel or the driver/],
    [{ env: { mode: "x" } }, /must be \[A-Z_\]\[A-Z0-9_\]\*/],
    [{ env: { "A.B": "x" } }, /must be \[A-Z_\]\[A-Z0-9_\]\*/],
    [{ env: { MODE: "two words" } }, /printable ASCII without spaces/],
    [{ env: { MODE: 'q"' } }, /printable ASCII without spaces/],
    [{ command: ["app"] }, /absolute guest path/],
    [{ command: ["/app", "a b"] }, /guest argument "a b"/],
    [{ env: Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`V${i}`, "x"])) }, /at most 29/],
    [{ env: { BIG: "x".repeat(MAX_KERNEL_CMDLINE_BYTES) } }, /x86 Linux takes at most 2047/],
  ])("refuses %j", (over, message) => {
    expect(() => kernelCmdline(spec(over), opts)).toThrow(InvalidSpecError);
    expect(() => kernelCmdline(spec(over), opts)).toThrow(message);
  });
});

describe("vmPaths", () => {
  it("puts the sockets and pid file in the child's directory", () => {
    expect(vmPaths("/srv/c/web")).toEqual({
      ctlSocket: "/srv/c/web/ctl.sock",
      qmpSocket: "/srv/c/web/qmp.sock",
      pidFile: "/srv/c/web/qemu.pid",
    });
  });

  it("refuses a directory too deep for a UNIX socket path", () => {
    expect(() => vmPaths(`/${"d".repeat(100)}`)).toThrow(SupervisorConfigError);
  });
});

describe("qemuArgs", () => {
  it("builds the q35 command line under TCG", () => {
    const args = qemuArgs(planOf(spec({ limits: { memoryBytes: 128 * MIB } })));
    expect(valuesOf(args, "-machine")).toEqual(["q35,accel=tcg"]);
    expect(args).not.toContain("-cpu");
    expect(args).not.toContain("-bios");
    expect(valuesOf(args, "-m")).toEqual(["128"]);
    expect(valuesOf(args, "-smp")).toEqual(["1"]);
    for (const flag of ["-nodefaults", "-no-user-config", "-no-reboot"]) expect(args).toContain(flag);
    expect(valuesOf(args, "-display")).toEqual(["none"]);
    expect(valuesOf(args, "-kernel")).toEqual(["/g/vmlinuz"]);
    expect(valuesOf(args, "-initrd")).toEqual(["/g/initrd.gz"]);
    expect(valuesOf(args, "-append")).toEqual(["console=ttyS0 quiet panic=-1 PORT=8080"]);
    expect(valuesOf(args, "-netdev")).toEqual(["user,id=net0,hostfwd=tcp:127.0.0.1:40001-:8080"]);
    expect(valuesOf(args, "-device")).toEqual([
      "virtio-net-pci,netdev=net0,romfile=",
      "virtio-serial-pci,id=vser0",
      "virtserialport,bus=vser0.0,chardev=ctl,name=enjin.ctl",
    ]);
    expect(valuesOf(args, "-chardev")).toEqual([
      "file,id=console,path=/var/log/enjin/web/current,append=on",
      "socket,id=ctl,path=/srv/children/web/ctl.sock,server=on,wait=off",
    ]);
    expect(valuesOf(args, "-serial")).toEqual(["chardev:console"]);
    expect(valuesOf(args, "-qmp")).toEqual(["unix:/srv/children/web/qmp.sock,server=on,wait=off"]);
    expect(valuesOf(args, "-pidfile")).toEqual(["/srv/children/web/qemu.pid"]);
  });

  it("asks for KVM with TCG as fallback and the host's CPU model when KVM was probed usable", () => {
    const args = qemuArgs(planOf(spec({ limits: { cpuMillis: 2000 } }), { accel: "kvm:tcg" }));
    expect(valuesOf(args, "-machine")).toEqual(["q35,accel=kvm:tcg"]);
    expect(valuesOf(args, "-cpu")).toEqual(["max"]);
    expect(valuesOf(args, "-smp")).toEqual(["2"]);
  });

  it("runs the spec's firmware instead of qemu's default BIOS", () => {
    const args = qemuArgs(planOf(spec({}, { firmware: "/usr/share/qemu/qboot.rom" })));
    expect(valuesOf(args, "-bios")).toEqual(["/usr/share/qemu/qboot.rom"]);
  });

  it("uses virtio-mmio devices on microvm", () => {
    const args = qemuArgs(planOf(spec({}, { machine: "microvm" })));
    expect(valuesOf(args, "-machine")).toEqual(["microvm,accel=tcg"]);
    expect(valuesOf(args, "-device").slice(0, 2)).toEqual([
      "virtio-net-device,netdev=net0",
      "virtio-serial-device,id=vser0",
    ]);
  });

  it("doubles commas in paths inside option lists", () => {
    expect(qemuOptValue("/a,b/c")).toBe("/a,,b/c");
    const args = qemuArgs(planOf(spec(), { logPath: "/logs/a,b", paths: vmPaths("/c,d") }));
    expect(valuesOf(args, "-chardev")).toEqual([
      "file,id=console,path=/logs/a,,b,append=on",
      "socket,id=ctl,path=/c,,d/ctl.sock,server=on,wait=off",
    ]);
  });
});
