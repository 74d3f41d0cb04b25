/**
 * The vm driver against real qemu booting a real Debian cloud kernel and a busybox initramfs
 * (test/support/guest/build-guest.ts builds it once into a cache). Four boots in all: start, ready on
 * virtio-serial, the page on the forwarded port, a clean QMP power-off; a second start whose qemu is
 * frozen (SIGSTOP), so that a new agent's recover finds its monitor deaf and kills it; a third that
 * kill -9 ends, wait() reports and the restart policy restarts as a fourth boot, which a second
 * driver instance (an agent that restarted) recovers and stops. Runs under TCG where KVM does
 * not work (the driver's probe decides).
 */

import { mkdir, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { request } from "node:http";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { seededRng } from "../../rings/index.ts";
import { freePort } from "../../test/support/free-port.ts";
import { buildTestGuest, TEST_GUEST_PAGE, type TestGuest } from "../../test/support/guest/build-guest.ts";
import type { ChildHandle, ChildSpec, StartRequest } from "./driver.ts";
import { ChildRunningError, ChildStartError, InvalidSpecError, MissingBinaryError } from "./errors.ts";
import { EMPTY_RESTART_HISTORY, restartPolicy, restartStep } from "./restart-policy.ts";
import { type VmDriver, vm } from "./vm.ts";
import { isSameProcess, vmStateOf } from "./vm-state.ts";

const MIB = 1024 * 1024;
/** Generous for TCG on a loaded 2-core machine; the benchmark measures the real figure. */
const READY_TIMEOUT_MS = 90_000;

let root: string;
let guest: TestGuest;
const drivers: VmDriver[] = [];
const handles: ChildHandle[] = [];

function driver(opts: Parameters<typeof vm>[0] = {}): VmDriver {
  const d = vm({ pollIntervalMs: 50, ...opts })({ agentStateDir: join(root, "agent-state") });
  drivers.push(d);
  return d;
}

function spec(over: Partial<ChildSpec> = {}, driverOver: Record<string, unknown> = {}): ChildSpec {
  return {
    name: "web",
    command: ["/init"],
    limits: { memoryBytes: 256 * MIB },
    driver: {
      kernel: guest.kernel,
      initrd: guest.initrd,
      guestPort: guest.guestPort,
      append: [...guest.append],
      ...(guest.firmware === undefined ? {} : { firmware: guest.firmware }),
      ...driverOver,
    },
    ...over,
  };
}

async function requestFor(name: string): Promise<StartRequest> {
  const dir = join(root, "children", name);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await mkdir(join(root, "logs", name), { recursive: true });
  return { spec: spec({ name }), port: await freePort(), dir, logPath: join(root, "logs", name, "current") };
}

/** GET / on the host port; the body, or the error's text. */
function get(port: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path: "/", timeout: 10_000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => {
        body += d;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("timeout", () => req.destroy(new Error("GET timed out")));
    req.on("error", reject);
    req.end();
  });
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "enjin-vm-"));
  guest = await buildTestGuest();
}, 600_000);

afterAll(async () => {
  const cleaner = driver();
  for (const h of handles) {
    await cleaner.stop(h, 5_000).catch(() => {});
    await cleaner.cleanup(h).catch(() => {});
  }
  for (const d of drivers) d.close();
  await rm(root, { recursive: true, force: true });
}, 60_000);

describe("vm: a real guest under qemu", () => {
  it("boots, says ready on virtio-serial, serves on the forwarded port, powers off over QMP and starts again", async () => {
    const d = driver();
    const req = await requestFor("web");
    await d.validate(req.spec);
    const first = await d.start(req);
    handles.push(first);
    expect(["tcg", "kvm:tcg"]).toContain(vmStateOf(first).accel);
    await d.ready(first, READY_TIMEOUT_MS);
    expect(await get(req.port)).toEqual({ status: 200, body: TEST_GUEST_PAGE });
    await d.ping(first, 10_000);
    expect((await d.usage(first)).memoryBytes).toBeGreaterThan(0);
    await expect(d.cleanup(first)).rejects.toThrow(ChildRunningError);

    const exit = await d.stop(first, 30_000);
    expect(exit).toEqual({ code: 0, signal: null });
    // The guest itself powered off (the ACPI button, not `quit` or a signal): its kernel said so.
    expect(await readFile(req.logPath, "utf8")).toMatch(/reboot: Power down/);
    expect(await d.stop(first, 1_000)).toEqual(exit); // idempotent
    await d.cleanup(first);
    expect(await readdir(req.dir)).toEqual([]);
    await expect(get(req.port)).rejects.toThrow(); // nothing listens on the port any more

    const second = await d.start(req);
    handles.push(second);
    await d.ready(second, READY_TIMEOUT_MS);
    expect((await get(req.port)).body).toBe(TEST_GUEST_PAGE);

    // A qemu that is ours (pid, start time) but whose monitor is deaf (stopped here with SIGSTOP) is
    // not adopted by a new agent: recover kills it, so no second copy runs beside it on the port.
    process.kill(second.pid, "SIGSTOP");
    const deafRecovered = await driver({ qmpTimeoutMs: 500 }).recover(second);
    expect(deafRecovered).toBeNull();
    expect(await d.wait(second)).toEqual({ code: null, signal: "SIGKILL" });
    await expect(d.ping(second, 2_000)).rejects.toThrow();
    await d.cleanup(second);
  }, 300_000);

  it("is restarted under the restart policy, recovered by a new agent, and stopped by it", async () => {
    const d = driver();
    const req = await requestFor("app");
    const policy = restartPolicy({
      attempts: 2,
      intervalMs: 60_000,
      delayMs: 50,
      maxDelayMs: 200,
      jitter: 0.5,
    });
    let history = restartStep(
      EMPTY_RESTART_HISTORY,
      { kind: "started" },
      policy,
      Date.now(),
      seededRng(1),
    ).history;
    const first = await d.start(req);
    handles.push(first);
    await d.ready(first, READY_TIMEOUT_MS);
    history = restartStep(history, { kind: "healthy" }, policy, Date.now(), seededRng(1)).history;

    process.kill(first.pid, "SIGKILL");
    const exit = await d.wait(first);
    const step = restartStep(history, { kind: "exited", exit }, policy, Date.now(), seededRng(1));
    expect(step.action.kind).toBe("restart");
    if (step.action.kind !== "restart") return;
    await new Promise((resolve) =>
      setTimeout(resolve, step.action.kind === "restart" ? step.action.delayMs : 0),
    );
    await d.cleanup(first);
    const second = await d.start(req);
    handles.push(second);
    await d.ready(second, READY_TIMEOUT_MS);
    expect((await get(req.port)).body).toBe(TEST_GUEST_PAGE);

    // The agent goes away (its channels close, the VM runs on); a new one recovers the VM.
    d.close();
    const later = driver();
    const recovered = await later.recover(JSON.parse(JSON.stringify(second)) as ChildHandle);
    expect(recovered).not.toBeNull();
    await later.ready(recovered as ChildHandle, 30_000); // "ready" again on the new connection
    await later.ping(recovered as ChildHandle, 10_000);
    const stopped = await later.stop(recovered as ChildHandle, 30_000);
    expect(stopped.code).toBeNull(); // a recovered VM's status went to the agent that started it
    expect(stopped.reason).toMatch(/agent that started it/);
    expect(await isSameProcess(second.pid, vmStateOf(second).startTicks, vmStateOf(second).bootId)).toBe(
      false,
    );
    expect(await readFile(req.logPath, "utf8")).toMatch(/reboot: Power down/);
    expect(await later.recover(second)).toBeNull();
    await later.cleanup(second);
  }, 300_000);
});

describe("vm: bad specs and bad starts change nothing", () => {
  it("refuses a missing kernel, a missing qemu and absurd memory with named errors", async () => {
    const d = driver();
    const req = await requestFor("bad");
    const noKernel = spec({ name: "bad" }, { kernel: join(root, "no-such-vmlinuz") });
    await expect(d.validate(noKernel)).rejects.toThrow(InvalidSpecError);
    await expect(d.start({ ...req, spec: noKernel })).rejects.toThrow(/driver.kernel .* does not exist/);
    const noQemu = driver({ qemuBinary: join(root, "bin", "qemu-system-x86_64") });
    await expect(noQemu.validate(req.spec)).rejects.toThrow(MissingBinaryError);
    await expect(noQemu.start(req)).rejects.toThrow(/apt-get install qemu-system-x86/);
    const huge = spec({ name: "bad", limits: { memoryBytes: 1024 ** 4 } });
    await expect(d.validate(huge)).rejects.toThrow(InvalidSpecError);
    await expect(d.start({ ...req, spec: huge })).rejects.toThrow(/memoryBytes is the guest's RAM/);
    const tiny = spec({ name: "bad", limits: { memoryBytes: MIB } });
    await expect(d.validate(tiny)).rejects.toThrow(InvalidSpecError);
    expect(await readdir(req.dir)).toEqual([]);
  });

  it("reports qemu failing to start (its host port taken) as ChildStartError and leaves nothing behind", async () => {
    const d = driver({ accel: "tcg" });
    const req = await requestFor("busy");
    const holder: Server = createServer();
    await new Promise<void>((resolve) => holder.listen(req.port, "127.0.0.1", resolve));
    try {
      const failure = await d.start(req).then(
        () => null,
        (err: unknown) => err,
      );
      expect(failure).toBeInstanceOf(ChildStartError);
      expect(String(failure)).toMatch(/host forwarding/);
      expect(await readdir(req.dir)).toEqual([]);
    } finally {
      await new Promise((resolve) => holder.close(resolve));
    }
  });
});
