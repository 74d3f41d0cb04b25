/**
 * `npx tsx bench/supervise-vm.ts [--boots N] [--plain N]`: start-to-ready of a child under the vm
 * driver, booting the test guest (test/support/guest/build-guest.ts) under qemu. Per boot:
 *   - start: driver.start() until it resolves (qemu spawned and its QMP monitor answering);
 *   - ready: from the start call until the guest says `ready` on virtio-serial;
 *   - http: from the start call until a GET / on the forwarded host port, sent once ready, answers 200;
 *   - guest uptime: the guest kernel's own uptime when its /init had httpd up (from the log);
 *   - stop: a clean stop (QMP system_powerdown until qemu exits).
 * Baselines measured in the same run, interleaved with the boots so load hits both alike:
 *   - spawn: `qemu-system-x86_64 -version` until it exits (the floor of starting qemu at all);
 *   - first serial byte: the same VM with the kernel's messages on (loglevel=7) until the first byte
 *     reaches the serial log: qemu, firmware and the kernel's decompression, before any of its init.
 * `--plain N` boots N more times as a plain Debian guest would: the packaged bzImage (decompressing
 * itself), qemu's default BIOS (SeaBIOS) and none of TEST_GUEST_APPEND, to show what those save. The KVM probe (once per driver) is timed on its own. Prints a summary on stderr and one JSON
 * record on stdout; every VM is stopped and the temp dir removed, also on failure.
 */
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { request } from "node:http";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { ChildHandle, ChildSpec } from "../agent/supervise/driver.ts";
import { type VmDriver, vm } from "../agent/supervise/vm.ts";
import { findExecutable } from "../agent/supervise/vm-host.ts";
import { probeKvm } from "../agent/supervise/vm-kvm-probe.ts";
import { vmStateOf } from "../agent/supervise/vm-state.ts";
import { freePort } from "../test/support/free-port.ts";
import { buildTestGuest, TEST_GUEST_PAGE, type TestGuest } from "../test/support/guest/build-guest.ts";

const { values } = parseArgs({
  options: { boots: { type: "string", default: "5" }, plain: { type: "string", default: "2" } },
});
const boots = Number(values.boots);
const plainBoots = Number(values.plain);
if (!Number.isInteger(boots) || boots < 1 || boots > 100)
  throw new Error(`--boots takes 1..100, not ${values.boots}`);
if (!Number.isInteger(plainBoots) || plainBoots < 0 || plainBoots > 100)
  throw new Error(`--plain takes 0..100, not ${values.plain}`);
const say = (line: string) => process.stderr.write(`${line}\n`);
const READY_TIMEOUT_MS = 120_000;
const MIB = 1024 * 1024;

const now = () => performance.now();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** One GET /; true on 200 with the guest's page. */
function getPage(port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ host: "127.0.0.1", port, path: "/", timeout: timeoutMs }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => {
        body += d;
      });
      res.on("end", () => resolve(res.statusCode === 200 && body === TEST_GUEST_PAGE));
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(false));
    req.end();
  });
}

/** Poll until `check` holds (every `everyMs`), or throw after `timeoutMs`. */
async function until(
  check: () => Promise<boolean>,
  everyMs: number,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = now() + timeoutMs;
  while (!(await check())) {
    if (now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs} ms`);
    await sleep(everyMs);
  }
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] as number;
  return { n: s.length, min: s[0] as number, median: at(0.5), max: s[s.length - 1] as number };
};
const ms = (x: number) => `${Math.round(x)} ms`;
const show = (label: string, xs: number[]) => {
  const { n, min, median, max } = stats(xs);
  say(`  ${label.padEnd(28)} n=${n}  min ${ms(min)}  median ${ms(median)}  max ${ms(max)}`);
};

interface Boot {
  readonly startMs: number;
  readonly readyMs: number;
  readonly httpMs: number;
  readonly guestUptimeS: number | null;
  readonly stopMs: number;
  readonly accel: string;
}

const root = await mkdtemp(join(tmpdir(), "enjin-bench-vm-"));
const live: { driver: VmDriver; handle: ChildHandle }[] = [];
let serial = 0;

async function newRequest(guest: TestGuest, append: readonly string[], plain = false) {
  const name = `b${serial++}`;
  const dir = join(root, "children", name);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const spec: ChildSpec = {
    name,
    command: ["/init"],
    limits: { memoryBytes: 256 * MIB },
    driver: {
      kernel: plain ? guest.bzImage : guest.kernel,
      initrd: guest.initrd,
      guestPort: guest.guestPort,
      append: [...append],
      ...(guest.firmware === undefined || plain ? {} : { firmware: guest.firmware }),
    },
  };
  return { spec, port: await freePort(), dir, logPath: join(root, `${name}.log`) };
}

/** One measured boot: start, ready, http, stop. */
async function boot(
  driver: VmDriver,
  guest: TestGuest,
  append: readonly string[],
  plain = false,
): Promise<Boot> {
  const req = await newRequest(guest, append, plain);
  const t0 = now();
  const handle = await driver.start(req);
  const startMs = now() - t0;
  live.push({ driver, handle });
  await driver.ready(handle, READY_TIMEOUT_MS);
  const readyMs = now() - t0;
  // One GET once the guest is ready. (Polling from the start measures qemu's user network instead:
  // a connection made before the guest's eth0 is up waits for slirp's SYN retransmission, ~1 s.)
  if (!(await getPage(req.port, 30_000))) throw new Error("the guest was ready but did not serve its page");
  const httpMs = now() - t0;
  const log = await readFile(req.logPath, "utf8");
  const uptime = /kernel uptime ([\d.]+) s/.exec(log)?.[1];
  const t1 = now();
  const exit = await driver.stop(handle, 30_000);
  const stopMs = now() - t1;
  if (exit.code !== 0) throw new Error(`the VM did not power off cleanly: ${JSON.stringify(exit)}`);
  live.pop();
  await driver.cleanup(handle);
  const guestUptimeS = uptime === undefined ? null : Number(uptime);
  return { startMs, readyMs, httpMs, guestUptimeS, stopMs, accel: vmStateOf(handle).accel };
}

/** Baseline: the same VM, kernel messages on, until the first byte reaches its serial log. */
async function firstSerialByte(driver: VmDriver, guest: TestGuest): Promise<number> {
  const req = await newRequest(guest, [...guest.append, "loglevel=7"]);
  const t0 = now();
  const handle = await driver.start(req);
  live.push({ driver, handle });
  await until(
    async () => ((await stat(req.logPath).catch(() => null))?.size ?? 0) > 0,
    2,
    60_000,
    "a serial byte",
  );
  const took = now() - t0;
  process.kill(handle.pid, "SIGKILL");
  await driver.wait(handle);
  live.pop();
  await driver.cleanup(handle);
  return took;
}

/** Baseline: `qemu -version` until it exits. */
async function plainSpawn(qemu: string): Promise<number> {
  const t0 = now();
  await new Promise<void>((resolve, reject) => {
    const child = spawn(qemu, ["-version"], { stdio: "ignore" });
    child.once("error", reject);
    child.once("exit", () => resolve());
  });
  return now() - t0;
}

try {
  const qemu = await findExecutable("qemu-system-x86_64");
  if (qemu === null) throw new Error("qemu-system-x86_64 is missing: apt-get install qemu-system-x86");
  const guest = await buildTestGuest();
  say(
    `guest: ${guest.kernelPackage}, initrd ${(await stat(guest.initrd)).size} bytes (cached: ${guest.cached})`,
  );
  const t = now();
  const probe = await probeKvm(qemu);
  const probeMs = now() - t;
  say(`KVM probe: ${probe.usable ? "usable" : "not usable"} (${probe.detail}) in ${ms(probeMs)}`);
  const driver = vm()({ agentStateDir: join(root, "agent-state") });
  const loadBefore = loadavg();

  // A first boot pays for the driver's own KVM probe: measured, not counted with the others.
  const warm = await boot(driver, guest, guest.append);
  say(`first boot (includes the driver's KVM probe): ready ${ms(warm.readyMs)}`);
  const measured: Boot[] = [];
  const spawns: number[] = [];
  const serials: number[] = [];
  const plain: Boot[] = [];
  // Interleaved, so that the machine's load (it is shared) weighs on every series alike.
  for (let i = 0; i < Math.max(boots, plainBoots); i++) {
    if (i < boots) {
      spawns.push(await plainSpawn(qemu));
      serials.push(await firstSerialByte(driver, guest));
      const b = await boot(driver, guest, guest.append);
      measured.push(b);
      say(`boot ${i + 1}/${boots}: ready ${ms(b.readyMs)}, http ${ms(b.httpMs)}`);
    }
    if (i < plainBoots) {
      const b = await boot(driver, guest, [], true);
      plain.push(b);
      say(`plain boot ${i + 1}/${plainBoots}: ready ${ms(b.readyMs)}`);
    }
  }
  const loadAfter = loadavg();
  driver.close();

  say(
    `\nvm driver, ${boots} boots, accel ${warm.accel}; load ${loadBefore[0]?.toFixed(2)} -> ${loadAfter[0]?.toFixed(2)}`,
  );
  show("baseline: qemu -version", spawns);
  show("baseline: first serial byte", serials);
  show(
    "start (monitor answers)",
    measured.map((b) => b.startMs),
  );
  show(
    "start -> ready (virtio)",
    measured.map((b) => b.readyMs),
  );
  show(
    "start -> ready -> HTTP 200",
    measured.map((b) => b.httpMs),
  );
  show(
    "guest kernel uptime at ready",
    measured.flatMap((b) => (b.guestUptimeS === null ? [] : [b.guestUptimeS * 1000])),
  );
  show(
    "stop (QMP power-off)",
    measured.map((b) => b.stopMs),
  );
  if (plain.length > 0)
    show(
      "ready, plain Debian guest",
      plain.map((b) => b.readyMs),
    );
  const medianReady = stats(measured.map((b) => b.readyMs)).median;
  say(
    `goal start-to-ready <= 3500 ms: ${medianReady <= 3500 ? "met" : "NOT met"} (median ${ms(medianReady)})`,
  );
  console.log(
    JSON.stringify({
      machine: { cpu: cpus()[0]?.model, cores: cpus().length, memoryBytes: totalmem() },
      loadavg: { before: loadBefore, after: loadAfter },
      accel: warm.accel,
      kvmProbe: { ...probe, ms: probeMs },
      guest: { kernelPackage: guest.kernelPackage },
      baseline: { spawnMs: spawns, firstSerialByteMs: serials },
      firstBoot: warm,
      boots: measured,
      plainBoots: plain,
    }),
  );
} finally {
  for (const { driver, handle } of live.splice(0)) {
    await driver.stop(handle, 5_000).catch(() => {});
    await driver.cleanup(handle).catch(() => {});
  }
  await rm(root, { recursive: true, force: true });
}
