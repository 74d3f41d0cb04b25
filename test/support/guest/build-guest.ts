/**
 * Builds the tiny guest the vm driver's tests and benchmark boot, from Debian packages only:
 *   - the kernel: the current `linux-image-*-cloud-amd64` (the one the `linux-image-cloud-amd64`
 *     meta-package depends on), fetched with `apt-get download` and unpacked with `dpkg -x`; its
 *     bzImage is decompressed here into the ELF vmlinux (kernel-image.ts) so that qemu boots it
 *     through PVH and the guest skips its own slow decompression under TCG;
 *   - the initramfs (cpio newc, gzip): busybox from `busybox-static` with its applets as symlinks,
 *     the virtio modules the cloud kernel builds as modules (virtio_pci, virtio_net, virtio_console
 *     and what they need, found from each module's modinfo), the ACPI button and evdev modules for a
 *     clean power-off, init.sh as /init, and a known page for httpd.
 *
 * Results live in a cache directory ($ENJIN_GUEST_CACHE, else ~/.cache/enjin-guest), one directory
 * per combination of inputs (kernel package and version, busybox, init.sh, this builder's layout), so
 * a second run only asks apt-cache which kernel is current and finds everything built; building a new
 * one removes the older ones. Every output is written to a temporary name and renamed into place, so
 * runs in parallel never see half a file.
 *
 * Run it by hand with `npx tsx test/support/guest/build-guest.ts` (prints the paths as JSON).
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { type CpioEntry, cpioNewc } from "./cpio.ts";
import { extractVmlinux } from "./kernel-image.ts";
import { builtinModules, modinfoDepends, moduleLoadOrder, moduleName } from "./kernel-modules.ts";

const run = promisify(execFile);

/** Bumped whenever the layout of a built guest changes, so old cache entries are not reused. */
export const GUEST_LAYOUT_VERSION = 3;
/** The meta-package whose dependency names the current cloud kernel. */
export const CLOUD_KERNEL_META_PACKAGE = "linux-image-cloud-amd64";
/** The port the test guest's httpd listens on when the spec says so (the vm driver passes it as PORT). */
export const TEST_GUEST_PORT = 8080;
/** The page the guest serves at `/`. */
export const TEST_GUEST_PAGE = "enjin test guest: hello from busybox httpd\n";
/** Modules the guest loads (with their dependencies), whatever the machine type. */
export const TEST_GUEST_MODULES: readonly string[] = [
  "virtio_pci",
  "virtio_mmio",
  "virtio_net",
  "virtio_console",
  "button",
  "evdev",
];
/**
 * Kernel options that make a TCG boot faster without changing what the test checks: no crypto
 * self-tests at boot (the largest single cost under TCG, ~0.6 s), no zeroing of every allocation, no
 * speculative-execution mitigations, no clocksource watchdog and no audit or LSMs.
 */
export const TEST_GUEST_APPEND: readonly string[] = [
  "cryptomgr.notests=1",
  "init_on_alloc=0",
  "mitigations=off",
  "tsc=reliable",
  "no_timer_check",
  "audit=0",
  "lsm=",
  "random.trust_cpu=on",
];

/** qemu's qboot (package qemu-system-data): loads a kernel in milliseconds where SeaBIOS takes hundreds. */
export const QBOOT_FIRMWARE = "/usr/share/qemu/qboot.rom";

/** The guest's files and the settings a vm spec needs to boot it. */
export interface TestGuest {
  /** The uncompressed ELF vmlinux when the package's bzImage could be unpacked (PVH boot), else the bzImage. */
  readonly kernel: string;
  /** The package's compressed kernel as it came (for comparisons: it boots slower under TCG). */
  readonly bzImage: string;
  readonly initrd: string;
  readonly guestPort: number;
  readonly append: readonly string[];
  /** qboot when qemu ships it, for spec.driver.firmware; else undefined (qemu's default BIOS). */
  readonly firmware?: string;
  /** The Debian kernel package and version the kernel came from. */
  readonly kernelPackage: string;
  /** True when this call found the guest already built. */
  readonly cached: boolean;
}

/** The vm spec's `driver` settings that boot `guest` (kernel, initrd, its port, append, firmware). */
export function testGuestDriver(guest: TestGuest): Record<string, unknown> {
  const { kernel, initrd, guestPort, append, firmware } = guest;
  return { kernel, initrd, guestPort, append: [...append], ...(firmware === undefined ? {} : { firmware }) };
}

/** Options of `buildTestGuest`. */
export interface BuildGuestOptions {
  /** Where downloads and built guests are kept (default $ENJIN_GUEST_CACHE or ~/.cache/enjin-guest). */
  readonly cacheDir?: string;
  /** The busybox binary to pack (default /bin/busybox from busybox-static). */
  readonly busybox?: string;
}

/** Building the guest failed; the message says what is missing and how to get it. */
export class GuestBuildError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The default cache directory. */
export function defaultGuestCacheDir(): string {
  return process.env.ENJIN_GUEST_CACHE ?? join(homedir(), ".cache", "enjin-guest");
}

const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );
const sha256 = (data: Uint8Array | string) => createHash("sha256").update(data).digest("hex");

/** Run a tool; a missing tool or a failure becomes a GuestBuildError naming the command. */
async function tool(file: string, args: string[], cwd?: string): Promise<string> {
  try {
    const { stdout } = await run(file, args, { cwd, maxBuffer: 16 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    throw new GuestBuildError(
      e.code === "ENOENT"
        ? `${file} is not installed (it comes with Debian's apt and dpkg)`
        : `${file} ${args.join(" ")} failed: ${(e.stderr ?? e.message).trim().slice(0, 500)}`,
      { cause: err },
    );
  }
}

/** The current cloud kernel package and its version, by asking apt-cache (running apt-get update once if needed). */
async function currentCloudKernel(): Promise<{ name: string; version: string }> {
  // One apt-cache call (it is slow on a loaded machine): the meta-package pins name and version.
  const lookup = async () => {
    const show = await tool("apt-cache", ["show", "--no-all-versions", CLOUD_KERNEL_META_PACKAGE]).catch(
      () => "",
    );
    const dep = /^Depends:.*?\b(linux-image-\S+-cloud-amd64) \(= ([^)\s]+)\)/m.exec(show);
    return dep?.[1] === undefined || dep[2] === undefined ? null : { name: dep[1], version: dep[2] };
  };
  const found =
    (await lookup()) ??
    (process.getuid?.() === 0 ? await tool("apt-get", ["update", "-qq"]).then(lookup) : null);
  if (found === null)
    throw new GuestBuildError(
      `apt-cache knows no ${CLOUD_KERNEL_META_PACKAGE}: run apt-get update (as root) on a Debian with the main archive in its sources`,
    );
  return found;
}

/** True when an ELF executable asks for a program interpreter (is dynamically linked). */
export function elfIsDynamic(elf: Uint8Array): boolean {
  const b = Buffer.from(elf.buffer, elf.byteOffset, elf.byteLength);
  if (b.length < 64 || b.readUInt32BE(0) !== 0x7f454c46 || b[4] !== 2)
    throw new GuestBuildError("busybox is not a 64-bit ELF executable");
  const phoff = Number(b.readBigUInt64LE(0x20));
  const phentsize = b.readUInt16LE(0x36);
  const phnum = b.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) if (b.readUInt32LE(phoff + i * phentsize) === 3) return true; // PT_INTERP
  return false;
}

/** The kernel package's .deb in the cache, downloaded once. */
async function kernelDeb(cacheDir: string, pkg: { name: string; version: string }): Promise<string> {
  const deb = join(cacheDir, "debs", `${pkg.name}_${pkg.version}.deb`);
  if (await exists(deb)) return deb;
  const work = await mkdtemp(join(cacheDir, "tmp-deb-"));
  try {
    await tool("apt-get", ["download", "-qq", `${pkg.name}=${pkg.version}`], work);
    const got = (await readdir(work)).find((f) => f.endsWith(".deb"));
    if (got === undefined) throw new GuestBuildError(`apt-get download ${pkg.name} left no .deb`);
    await mkdir(dirname(deb), { recursive: true });
    await rename(join(work, got), deb);
    return deb;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Every module file of a kernel tree, by name. */
async function moduleFiles(modulesDir: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for (const entry of await readdir(join(modulesDir, "kernel"), { recursive: true })) {
    const base = entry.split("/").pop() ?? "";
    if (base.endsWith(".ko")) files.set(moduleName(base.slice(0, -3)), join(modulesDir, "kernel", entry));
  }
  return files;
}

/** The initramfs entries: layout, busybox and its applets, modules, /init, /etc/modules, the page. */
function initramfsEntries(
  busybox: Buffer,
  applets: string[],
  modules: Map<string, Buffer>,
  init: string,
): CpioEntry[] {
  const entries: CpioEntry[] = [];
  for (const dir of ["bin", "dev", "etc", "lib", "lib/modules", "proc", "sys", "tmp", "www"])
    entries.push({ kind: "dir", path: dir });
  entries.push({ kind: "chardev", path: "dev/console", major: 5, minor: 1 });
  entries.push({ kind: "file", path: "bin/busybox", data: busybox, mode: 0o755 });
  for (const applet of applets)
    if (applet !== "busybox") entries.push({ kind: "symlink", path: `bin/${applet}`, target: "busybox" });
  for (const [name, data] of modules) entries.push({ kind: "file", path: `lib/modules/${name}.ko`, data });
  entries.push({ kind: "file", path: "etc/modules", data: Buffer.from([...modules.keys(), ""].join("\n")) });
  entries.push({ kind: "file", path: "init", data: Buffer.from(init), mode: 0o755 });
  entries.push({ kind: "file", path: "www/index.html", data: Buffer.from(TEST_GUEST_PAGE) });
  return entries;
}

/** The kernel image and the guest's modules (in load order) from an unpacked kernel package. */
async function kernelParts(
  tree: string,
  pkgName: string,
): Promise<{ vmlinuz: string; order: string[]; modules: Map<string, Buffer> }> {
  const release = (await readdir(join(tree, "lib", "modules")).catch(() => []))[0];
  const image = (await readdir(join(tree, "boot")).catch(() => [])).find((f) => f.startsWith("vmlinuz-"));
  if (release === undefined || image === undefined)
    throw new GuestBuildError(`${pkgName} has no boot/vmlinuz-* or lib/modules/*: not a kernel package`);
  const modulesDir = join(tree, "lib", "modules", release);
  const files = await moduleFiles(modulesDir);
  const builtin = builtinModules(await readFile(join(modulesDir, "modules.builtin"), "utf8").catch(() => ""));
  const bytes = new Map<string, Buffer>();
  const dependsOf = (name: string): string[] | null => {
    const data = bytes.get(name);
    return data === undefined ? null : modinfoDepends(data);
  };
  // Read every module whose name could be in the closure; the order then needs no more I/O.
  for (const [name, file] of files)
    if (/^(virtio|failover|net_failover|button|evdev)/.test(name)) bytes.set(name, await readFile(file));
  let order: string[];
  try {
    order = moduleLoadOrder(TEST_GUEST_MODULES, dependsOf, builtin);
  } catch (err) {
    throw new GuestBuildError(`cannot pack the guest's modules from ${pkgName}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return {
    vmlinuz: join(tree, "boot", image),
    order,
    modules: new Map(order.map((n) => [n, bytes.get(n) as Buffer])),
  };
}

/** Build the test guest into the cache, or find it there. Throws GuestBuildError saying what is missing. */
export async function buildTestGuest(opts: BuildGuestOptions = {}): Promise<TestGuest> {
  const cacheDir = opts.cacheDir ?? defaultGuestCacheDir();
  await mkdir(cacheDir, { recursive: true });
  const busyboxPath = opts.busybox ?? "/bin/busybox";
  const busybox = await readFile(busyboxPath).catch((err: unknown) => {
    throw new GuestBuildError(`${busyboxPath} is missing: apt-get install busybox-static`, { cause: err });
  });
  if (elfIsDynamic(busybox))
    throw new GuestBuildError(
      `${busyboxPath} is dynamically linked: apt-get install busybox-static (not busybox)`,
    );
  const init = await readFile(join(dirname(fileURLToPath(import.meta.url)), "init.sh"), "utf8");
  const pkg = await currentCloudKernel();
  const key = sha256(
    JSON.stringify([
      GUEST_LAYOUT_VERSION,
      pkg,
      sha256(busybox),
      sha256(init),
      TEST_GUEST_MODULES,
      TEST_GUEST_PAGE,
    ]),
  ).slice(0, 16);
  const out = join(cacheDir, `guest-${key}`);
  const firmware = (await exists(QBOOT_FIRMWARE)) ? QBOOT_FIRMWARE : undefined;
  const result = async (cached: boolean): Promise<TestGuest> => ({
    kernel: (await exists(join(out, "vmlinux"))) ? join(out, "vmlinux") : join(out, "vmlinuz"),
    bzImage: join(out, "vmlinuz"),
    ...(firmware === undefined ? {} : { firmware }),
    initrd: join(out, "initrd.gz"),
    guestPort: TEST_GUEST_PORT,
    append: TEST_GUEST_APPEND,
    kernelPackage: `${pkg.name} ${pkg.version}`,
    cached,
  });
  if (await exists(join(out, "initrd.gz"))) return result(true);

  const deb = await kernelDeb(cacheDir, pkg);
  const work = await mkdtemp(join(cacheDir, "tmp-guest-"));
  try {
    const tree = join(work, "kernel");
    await tool("dpkg", ["-x", deb, tree]);
    const { vmlinuz, order, modules } = await kernelParts(tree, pkg.name);
    const applets = (await tool(busyboxPath, ["--list"]))
      .split("\n")
      .filter((a) => /^[a-z0-9._[-]+$/.test(a));
    const initrd = gzipSync(cpioNewc(initramfsEntries(busybox, applets, modules, init)));
    const built = join(work, "guest");
    await mkdir(built);
    const image = await readFile(vmlinuz);
    const elf = extractVmlinux(image);
    await writeFile(join(built, "vmlinuz"), image);
    if (elf !== null) await writeFile(join(built, "vmlinux"), elf);
    await writeFile(join(built, "initrd.gz"), initrd);
    await writeFile(join(built, "modules"), `${order.join("\n")}\n`);
    await rename(built, out).catch(async (err) => {
      if (!(await exists(join(out, "initrd.gz")))) throw err; // a parallel build finished first
    });
    // Guests built from older inputs (a previous kernel, init.sh or layout) are ~70 MB each, and an
    // older kernel's .deb ~26 MB: drop them.
    for (const entry of await readdir(cacheDir))
      if (entry.startsWith("guest-") && join(cacheDir, entry) !== out)
        await rm(join(cacheDir, entry), { recursive: true, force: true });
    for (const entry of await readdir(dirname(deb)))
      if (join(dirname(deb), entry) !== deb) await rm(join(dirname(deb), entry), { force: true });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return result(false);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const started = performance.now();
  const guest = await buildTestGuest();
  console.log(JSON.stringify({ ...guest, ms: Math.round(performance.now() - started) }, null, 2));
}
