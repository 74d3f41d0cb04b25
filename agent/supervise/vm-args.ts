/**
 * The vm driver's pure half: reading a spec's VM settings, checking them, and turning them into the
 * kernel command line and the exact qemu argv. No I/O (file checks, the KVM probe and the spawn are
 * vm.ts's), so every choice here is unit-tested.
 *
 * What the guest sees of the spec:
 *   - `spec.driver.kernel` / `initrd`: host paths of the kernel (a bzImage, or an ELF vmlinux qemu
 *     boots through its PVH entry) and initramfs qemu boots directly; `firmware` optionally replaces
 *     qemu's default BIOS (qboot, /usr/share/qemu/qboot.rom, boots a kernel in milliseconds);
 *   - `spec.driver.guestPort`: the port the guest serves on; the host's allocated port is forwarded
 *     to it by qemu's user-mode network (`hostfwd`), and the guest gets it as PORT;
 *   - `spec.env`: passed on the kernel command line as NAME=value, which Linux hands to the guest's
 *     init as its environment (names are upper-case: lower-case words are the kernel's own options);
 *   - `spec.command`: empty (the initramfs's /init runs), or the guest program to run as init
 *     (`rdinit=`) with its arguments after `--`;
 *   - `limits.memoryBytes` -> `-m` (whole MiB), `limits.cpuMillis` -> `-smp` (whole vCPUs only).
 *
 * The control channel is a virtio-serial port named `enjin.ctl` backed by a UNIX socket in the
 * child's directory (see vm-channel.ts); QMP listens on another for a clean stop and for recovery.
 */
import type { ChildSpec } from "./driver.ts";
import { InvalidSpecError, SupervisorConfigError, UnenforceableLimitError } from "./errors.ts";

/** The driver's registry name. */
export const VM_DRIVER = "vm";
/** Layout version of the vm handle's state (see vm.ts). */
export const VM_STATE_VERSION = 1;
/** Name of the virtio-serial port the guest talks to the agent on (/sys/class/virtio-ports/*\/name). */
export const VM_CTL_PORT_NAME = "enjin.ctl";
/** Files the driver makes in the child's directory. */
export const VM_FILES = { ctlSocket: "ctl.sock", qmpSocket: "qmp.sock", pidFile: "qemu.pid" } as const;
/** A guest gets this much RAM when its spec sets no limits.memoryBytes. */
export const DEFAULT_VM_MEMORY_BYTES = 256 * 1024 * 1024;
/** Least RAM a guest may have: below this a distribution kernel does not come up. */
export const MIN_VM_MEMORY_BYTES = 64 * 1024 * 1024;
/** Longest kernel command line on x86 (COMMAND_LINE_SIZE 2048, with its NUL). */
export const MAX_KERNEL_CMDLINE_BYTES = 2047;
/** Environment variables the kernel hands init (MAX_INIT_ENVS 32 minus HOME, TERM and PORT). */
export const MAX_GUEST_ENV_VARS = 29;
/** Arguments the kernel hands init after `--` (MAX_INIT_ARGS 32 minus init's own name). */
export const MAX_GUEST_ARGS = 31;
/** Longest path a UNIX socket may have (sun_path is 108 bytes with its NUL). */
export const MAX_UNIX_SOCKET_PATH_BYTES = 107;
/** The kernel options every guest gets: serial console, quiet boot, and a panic ends the VM at once. */
export const BASE_KERNEL_OPTIONS: readonly string[] = ["console=ttyS0", "quiet", "panic=-1"];

/** Machine types: `q35` (PCI, ACPI, HPET: robust under TCG) or `microvm` (virtio-mmio, fewer devices). */
export type VmMachine = "q35" | "microvm";
/** The machine types, for validation and help texts. */
export const VM_MACHINES: readonly VmMachine[] = ["q35", "microvm"];
/** How qemu runs guest code: KVM only, KVM falling back to TCG if it cannot start, or TCG. */
export type VmAccel = "kvm" | "kvm:tcg" | "tcg";

/** The VM settings a spec carries in `spec.driver`. */
export interface VmSpecOptions {
  /** Absolute host path of the kernel image (bzImage or PVH ELF). */
  readonly kernel: string;
  /** Absolute host path of the initramfs. */
  readonly initrd: string;
  /** Port the guest listens on; the child's host port is forwarded to it. */
  readonly guestPort: number;
  /** Extra kernel options, one word each (no spaces). */
  readonly append: readonly string[];
  /** Machine type (default q35). */
  readonly machine: VmMachine;
  /** Absolute host path of the firmware qemu runs instead of its default BIOS (`-bios`), if any. */
  readonly firmware?: string;
}

/** What the host allows a guest to have. */
export interface VmBounds {
  /** Most RAM one guest may have, in bytes (vm.ts: the host's RAM unless configured lower). */
  readonly maxMemoryBytes: number;
  /** Most vCPUs one guest may have (vm.ts: the host's CPU count). */
  readonly maxVcpus: number;
}

/** A spec, checked and resolved: everything qemuArgs needs from it. */
export interface VmSpecPlan {
  readonly options: VmSpecOptions;
  readonly memoryMiB: number;
  readonly vcpus: number;
  /** The kernel command line, as one string. */
  readonly cmdline: string;
}

const CHILD_NAME = /^[a-z0-9][a-z0-9-]{0,31}$/;
const GUEST_ENV_NAME = /^[A-Z_][A-Z0-9_]*$/;
/** One kernel command-line word: printable ASCII without space or double quote. */
const CMDLINE_WORD = /^[\x21\x23-\x7e]+$/;
const CMDLINE_VALUE = /^[\x21\x23-\x7e]*$/;
const RESERVED_ENV = ["PORT", "HOME", "TERM"];
const OPTION_KEYS = ["kernel", "initrd", "guestPort", "append", "machine", "firmware"];
const MIB = 1024 * 1024;

const isCleanAbsolute = (p: string) =>
  p.startsWith("/") && !p.includes("\0") && !p.split("/").some((part) => part === "." || part === "..");

/** Read `spec.driver` for the vm driver. Unknown keys and wrong types are refused with InvalidSpecError. */
export function parseVmSpecOptions(spec: ChildSpec): VmSpecOptions {
  const raw = spec.driver ?? {};
  const who = `vm child ${spec.name}`;
  for (const key of Object.keys(raw))
    if (!OPTION_KEYS.includes(key))
      throw new InvalidSpecError(
        `${who}: unknown driver option ${JSON.stringify(key)} (known: ${OPTION_KEYS.join(", ")})`,
      );
  const { kernel, initrd, guestPort, append = [], machine = "q35", firmware } = raw;
  for (const [key, value] of [
    ["kernel", kernel],
    ["initrd", initrd],
  ] as const) {
    if (typeof value !== "string" || !isCleanAbsolute(value))
      throw new InvalidSpecError(
        `${who}: driver.${key} must be the absolute path of the guest's ${key === "kernel" ? "kernel image" : "initramfs"} on this host, got ${JSON.stringify(value)}`,
      );
  }
  if (
    typeof guestPort !== "number" ||
    !Number.isSafeInteger(guestPort) ||
    guestPort < 1 ||
    guestPort > 65_535
  )
    throw new InvalidSpecError(
      `${who}: driver.guestPort must be the port (1..65535) the guest listens on, got ${JSON.stringify(guestPort)}`,
    );
  if (
    !Array.isArray(append) ||
    !append.every((w): w is string => typeof w === "string" && CMDLINE_WORD.test(w))
  )
    throw new InvalidSpecError(
      `${who}: driver.append must be an array of kernel options, each one word of printable ASCII without spaces or quotes`,
    );
  if (firmware !== undefined && (typeof firmware !== "string" || !isCleanAbsolute(firmware)))
    throw new InvalidSpecError(
      `${who}: driver.firmware must be the absolute path of a firmware image on this host, got ${JSON.stringify(firmware)}`,
    );
  if (typeof machine !== "string" || !VM_MACHINES.includes(machine as VmMachine))
    throw new InvalidSpecError(
      `${who}: driver.machine must be one of ${VM_MACHINES.join(", ")}, got ${JSON.stringify(machine)}`,
    );
  return {
    kernel: kernel as string,
    initrd: initrd as string,
    guestPort,
    append: [...append],
    machine: machine as VmMachine,
    ...(firmware === undefined ? {} : { firmware }),
  };
}

/** Guest RAM in MiB from limits.memoryBytes (rounded down to whole MiB), checked against the bounds. */
export function vmMemoryMiB(spec: ChildSpec, bounds: VmBounds): number {
  const bytes = spec.limits?.memoryBytes ?? DEFAULT_VM_MEMORY_BYTES;
  const max = Math.max(MIN_VM_MEMORY_BYTES, bounds.maxMemoryBytes);
  if (!Number.isSafeInteger(bytes) || bytes < MIN_VM_MEMORY_BYTES || bytes > max)
    throw new InvalidSpecError(
      `vm child ${spec.name}: limits.memoryBytes is the guest's RAM and must be a whole number of bytes from ` +
        `${MIN_VM_MEMORY_BYTES} (${MIN_VM_MEMORY_BYTES / MIB} MiB) to ${max} (${Math.floor(max / MIB)} MiB, this host's bound), got ${bytes}`,
    );
  return Math.floor(bytes / MIB);
}

/** vCPUs from limits.cpuMillis: whole cores only (a VM cannot be held to a fraction of one). */
export function vmVcpus(spec: ChildSpec, bounds: VmBounds): number {
  const millis = spec.limits?.cpuMillis;
  if (millis === undefined) return 1;
  if (!Number.isSafeInteger(millis) || millis < 1)
    throw new InvalidSpecError(
      `vm child ${spec.name}: limits.cpuMillis must be a whole number of at least 1`,
    );
  if (millis % 1000 !== 0)
    throw new UnenforceableLimitError(
      `vm child ${spec.name}: limits.cpuMillis ${millis} is not whole cores; the vm driver gives whole vCPUs, so ask for a multiple of 1000`,
    );
  const vcpus = millis / 1000;
  if (vcpus > bounds.maxVcpus)
    throw new InvalidSpecError(
      `vm child ${spec.name}: limits.cpuMillis ${millis} asks for ${vcpus} vCPUs; this host allows at most ${bounds.maxVcpus}`,
    );
  return vcpus;
}

/** The kernel command line: base options, rdinit, driver.append, PORT and the env, then `--` and the args. */
export function kernelCmdline(spec: ChildSpec, options: VmSpecOptions): string {
  const who = `vm child ${spec.name}`;
  const words = [...BASE_KERNEL_OPTIONS];
  const command = spec.command;
  if (!Array.isArray(command) || command.some((a) => typeof a !== "string"))
    throw new InvalidSpecError(`${who}: command must be an array of strings`);
  const [program, ...args] = command;
  if (program !== undefined) {
    if (!isCleanAbsolute(program) || !CMDLINE_WORD.test(program))
      throw new InvalidSpecError(
        `${who}: command[0] is the guest program run as init and must be an absolute guest path without spaces, got ${JSON.stringify(program)}; leave command empty to run the initramfs's /init`,
      );
    words.push(`rdinit=${program}`);
  }
  if (args.length > MAX_GUEST_ARGS)
    throw new InvalidSpecError(
      `${who}: at most ${MAX_GUEST_ARGS} guest arguments fit the kernel command line`,
    );
  for (const a of args)
    if (!CMDLINE_WORD.test(a))
      throw new InvalidSpecError(
        `${who}: guest argument ${JSON.stringify(a)} must be one word of printable ASCII without spaces or quotes (it travels on the kernel command line)`,
      );
  words.push(...options.append, `PORT=${options.guestPort}`);
  const env = Object.entries(spec.env ?? {});
  if (env.length > MAX_GUEST_ENV_VARS)
    throw new InvalidSpecError(
      `${who}: at most ${MAX_GUEST_ENV_VARS} environment variables reach a guest's init`,
    );
  for (const [key, value] of env) {
    if (!GUEST_ENV_NAME.test(key))
      throw new InvalidSpecError(
        `${who}: environment name ${JSON.stringify(key)} must be [A-Z_][A-Z0-9_]* (lower-case words on the kernel command line are the kernel's own)`,
      );
    if (RESERVED_ENV.includes(key))
      throw new InvalidSpecError(`${who}: ${key} is set by the kernel or the driver; remove it from env`);
    if (typeof value !== "string" || !CMDLINE_VALUE.test(value))
      throw new InvalidSpecError(
        `${who}: the value of ${key} must be printable ASCII without spaces or quotes (it travels on the kernel command line)`,
      );
    words.push(`${key}=${value}`);
  }
  if (args.length > 0) words.push("--", ...args);
  const cmdline = words.join(" ");
  if (Buffer.byteLength(cmdline) > MAX_KERNEL_CMDLINE_BYTES)
    throw new InvalidSpecError(
      `${who}: the kernel command line would be ${Buffer.byteLength(cmdline)} bytes; x86 Linux takes at most ${MAX_KERNEL_CMDLINE_BYTES}`,
    );
  return cmdline;
}

/**
 * Check everything the vm driver reads of a spec and resolve it. Throws InvalidSpecError or
 * UnenforceableLimitError (pids and openFiles: inside a guest they are the guest's own business).
 */
export function checkVmSpec(spec: ChildSpec, bounds: VmBounds): VmSpecPlan {
  if (typeof spec.name !== "string" || !CHILD_NAME.test(spec.name))
    throw new InvalidSpecError(`child name ${JSON.stringify(spec.name)} must match [a-z0-9][a-z0-9-]{0,31}`);
  const options = parseVmSpecOptions(spec);
  for (const key of ["pids", "openFiles"] as const)
    if (spec.limits?.[key] !== undefined)
      throw new UnenforceableLimitError(
        `vm child ${spec.name}: limits.${key} cannot be enforced from outside a VM; drop it (the guest's kernel limits its own processes)`,
      );
  const memoryMiB = vmMemoryMiB(spec, bounds);
  const vcpus = vmVcpus(spec, bounds);
  return { options, memoryMiB, vcpus, cmdline: kernelCmdline(spec, options) };
}

/** The sockets and pid file of one VM, in the child's directory. */
export interface VmPaths {
  readonly ctlSocket: string;
  readonly qmpSocket: string;
  readonly pidFile: string;
}

/** Paths of a VM's files in `dir`. Throws SupervisorConfigError when a socket path would be too long. */
export function vmPaths(dir: string): VmPaths {
  const paths = {
    ctlSocket: `${dir}/${VM_FILES.ctlSocket}`,
    qmpSocket: `${dir}/${VM_FILES.qmpSocket}`,
    pidFile: `${dir}/${VM_FILES.pidFile}`,
  };
  for (const p of [paths.ctlSocket, paths.qmpSocket])
    if (Buffer.byteLength(p) > MAX_UNIX_SOCKET_PATH_BYTES)
      throw new SupervisorConfigError(
        `the VM socket ${p} is longer than a UNIX socket path may be (${MAX_UNIX_SOCKET_PATH_BYTES} bytes); keep children's directories shorter`,
      );
  return paths;
}

/** Everything one qemu run is made of. */
export interface QemuPlan extends VmSpecPlan {
  readonly accel: VmAccel;
  /** Host address the forwarded port listens on (default in vm.ts: 127.0.0.1). */
  readonly hostAddress: string;
  /** The child's allocated host port. */
  readonly hostPort: number;
  readonly paths: VmPaths;
  /** Serial console and qemu's own messages go here (appended). */
  readonly logPath: string;
}

/** A value inside a qemu `-opt key=value,...` list: commas are doubled. */
export function qemuOptValue(value: string): string {
  return value.replaceAll(",", ",,");
}

/** The qemu argv (without the binary) for a plan. */
export function qemuArgs(plan: QemuPlan): string[] {
  const { options, paths } = plan;
  const q35 = options.machine === "q35";
  const args = ["-machine", `${options.machine},accel=${plan.accel}`];
  // Under KVM `max` is the host's CPU; under TCG the default model boots no slower and needs nothing.
  if (plan.accel !== "tcg") args.push("-cpu", "max");
  if (options.firmware !== undefined) args.push("-bios", options.firmware);
  args.push(
    "-m",
    String(plan.memoryMiB),
    "-smp",
    String(plan.vcpus),
    "-nodefaults",
    "-no-user-config",
    "-display",
    "none",
    "-no-reboot",
    "-kernel",
    plan.options.kernel,
    "-initrd",
    plan.options.initrd,
    "-append",
    plan.cmdline,
    "-chardev",
    `file,id=console,path=${qemuOptValue(plan.logPath)},append=on`,
    "-serial",
    "chardev:console",
    "-netdev",
    `user,id=net0,hostfwd=tcp:${plan.hostAddress}:${plan.hostPort}-:${options.guestPort}`,
    "-device",
    q35 ? "virtio-net-pci,netdev=net0,romfile=" : "virtio-net-device,netdev=net0",
    "-device",
    q35 ? "virtio-serial-pci,id=vser0" : "virtio-serial-device,id=vser0",
    "-chardev",
    `socket,id=ctl,path=${qemuOptValue(paths.ctlSocket)},server=on,wait=off`,
    "-device",
    `virtserialport,bus=vser0.0,chardev=ctl,name=${VM_CTL_PORT_NAME}`,
    "-qmp",
    `unix:${qemuOptValue(paths.qmpSocket)},server=on,wait=off`,
    "-pidfile",
    paths.pidFile,
  );
  return args;
}
