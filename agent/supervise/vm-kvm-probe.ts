/**
 * Is KVM usable for a 64-bit guest on this host? `/dev/kvm` being there is not enough: in some
 * sandboxes the module answers, real mode runs, and a Linux guest then hangs for ever on its way into
 * long mode. So the probe boots a 64 KiB firmware of our own under `accel=kvm` that does exactly that
 * trip (real mode -> protected mode -> paging + long mode) and then writes to qemu's isa-debug-exit
 * port; qemu exits with status (0x31 << 1) | 1 = 99. Any other status, an error, or silence past the
 * timeout means "use TCG". It takes tens of milliseconds where KVM works.
 */
import { spawn } from "node:child_process";
import { constants as fsc } from "node:fs";
import { access, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Size of the probe firmware (qemu maps it below 4 GiB and its last 64 KiB at 0xF0000). */
export const KVM_PROBE_FIRMWARE_BYTES = 0x1_0000;
/** The exit status qemu gives when the probe reached long mode: (0x31 << 1) | 1. */
export const KVM_PROBE_EXIT_STATUS = 99;
/** How long the probe may take before KVM counts as unusable (default of `probeKvm`). */
export const KVM_PROBE_TIMEOUT_MS = 2_000;

/**
 * The probe's code at 0xF0000 (assembled with GNU as --32, linked at 0xF0000):
 *   .code16  cli; lgdtl %cs:gdtr; cr0 |= PE; ljmpl $0x08, $pm32
 *   .code32  ds = es = ss = 0x10; zero 0x1000..0x4000 (rep stosl);
 *            PML4[0] = 0x2003 @0x1000; PDPT[0] = 0x3003 @0x2000; PD[0] = 0x83 (2 MiB page) @0x3000;
 *            cr4 |= PAE; cr3 = 0x1000; EFER (0xC0000080) |= LME; cr0 |= PG; ljmp $0x18, $lm64
 *   .code64  mov $0x31, %al; out %al, $0xf4; 1: hlt; jmp 1b
 *   gdt      null, 0x08 flat 32-bit code, 0x10 flat data, 0x18 64-bit code; gdtr = {31, 0xF0088}
 */
const PROBE_CODE_HEX =
  "fa2e660f0116a8000f20c06683c8010f22c066ea1a000f00080066b810008ed88ec08ed0bf0010000031c0b9000c0000" +
  "f3abc7050010000003200000c7050020000003300000c70500300000830000000f20e083c8200f22e0b8001000000f22" +
  "d8b9800000c00f320d000100000f300f20c00d000000800f22c0ea81000f001800b031e6f4f4ebfd0000000000000000" +
  "ffff0000009acf00ffff00000092cf00ffff0000009aaf001f0088000f00";
/** At the reset vector (0xFFFFFFF0, file offset 0xFFF0): ljmp $0xF000, $0x0000. */
const RESET_VECTOR_HEX = "ea000000f0";
const RESET_VECTOR_OFFSET = 0xfff0;
const HLT = 0xf4;

/** The probe firmware image: hlt everywhere, the code at 0, the reset jump at 0xFFF0. */
export function kvmProbeFirmware(): Buffer {
  const image = Buffer.alloc(KVM_PROBE_FIRMWARE_BYTES, HLT);
  Buffer.from(PROBE_CODE_HEX, "hex").copy(image, 0);
  Buffer.from(RESET_VECTOR_HEX, "hex").copy(image, RESET_VECTOR_OFFSET);
  return image;
}

/** The qemu arguments that run the probe firmware under `accel`. */
export function kvmProbeArgs(firmwarePath: string, accel: "kvm" | "tcg" = "kvm"): string[] {
  return [
    "-machine",
    `pc,accel=${accel}`,
    "-nodefaults",
    "-no-user-config",
    "-display",
    "none",
    "-m",
    "16",
    "-bios",
    firmwarePath,
    "-device",
    "isa-debug-exit,iobase=0xf4,iosize=0x04",
  ];
}

/** What the probe found. */
export interface KvmProbeResult {
  readonly usable: boolean;
  /** Why not (or "long mode reached under KVM"), for logs and the benchmark record. */
  readonly detail: string;
}

/**
 * Run the probe with `qemuBinary`. Never throws: every failure is a reason to use TCG. `accel` is
 * there so the probe itself can be tested under TCG, where it must succeed on every machine.
 */
export async function probeKvm(
  qemuBinary: string,
  timeoutMs: number = KVM_PROBE_TIMEOUT_MS,
  accel: "kvm" | "tcg" = "kvm",
): Promise<KvmProbeResult> {
  if (accel === "kvm") {
    try {
      await access("/dev/kvm", fsc.R_OK | fsc.W_OK);
    } catch {
      return { usable: false, detail: "/dev/kvm is missing or not readable and writable" };
    }
  }
  const dir = await mkdtemp(join(tmpdir(), "enjin-kvm-probe-"));
  try {
    const firmware = join(dir, "probe.bin");
    await writeFile(firmware, kvmProbeFirmware());
    return await new Promise<KvmProbeResult>((resolve) => {
      let stderr = "";
      const child = spawn(qemuBinary, kvmProbeArgs(firmware, accel), { stdio: ["ignore", "ignore", "pipe"] });
      child.stderr.on("data", (d: Buffer) => {
        if (stderr.length < 2_000) stderr += d.toString();
      });
      let timedOut = false;
      // On time-out the probe is killed and the answer given once it has exited: nothing is left behind.
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill("SIGKILL");
      }, timeoutMs);
      child.once("error", (err) => {
        clearTimeout(timer);
        resolve({ usable: false, detail: `could not run ${qemuBinary}: ${err.message}` });
      });
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        if (timedOut)
          resolve({
            usable: false,
            detail: `the ${accel} probe did not reach long mode within ${timeoutMs} ms`,
          });
        else if (code === KVM_PROBE_EXIT_STATUS)
          resolve({ usable: true, detail: `long mode reached under ${accel}` });
        else
          resolve({
            usable: false,
            detail: `the ${accel} probe ended with code ${code} signal ${signal}: ${stderr.trim().slice(0, 300)}`,
          });
      });
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
