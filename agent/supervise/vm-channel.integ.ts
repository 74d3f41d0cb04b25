/**
 * The vm driver's two socket protocols against scripted peers on real UNIX sockets: the guest's
 * control channel (vm-channel.ts) and qemu's QMP monitor (vm-qmp.ts). The real guest and the real
 * qemu are in vm.integ.ts; these cover the answers a healthy guest never gives.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { GuestChannelError, QmpError } from "./errors.ts";
import { GuestChannel, MAX_GUEST_LINE_BYTES } from "./vm-channel.ts";
import { QmpClient, qmpExecute } from "./vm-qmp.ts";

let dir: string;
let server: Server | undefined;
const channels: GuestChannel[] = [];

/** A peer on `path` that runs `onLine(line, socket)` for each line it gets, after `greeting`. */
async function peer(path: string, onLine: (line: string, s: Socket) => void, greeting = ""): Promise<Server> {
  const s = createServer((socket) => {
    let buf = "";
    if (greeting !== "") socket.write(greeting);
    socket.on("data", (d) => {
      buf += d.toString();
      for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        onLine(line, socket);
      }
    });
    socket.on("error", () => {});
  });
  await new Promise<void>((resolve) => s.listen(path, resolve));
  server = s;
  return s;
}

function channel(path: string, alive = true): GuestChannel {
  const c = new GuestChannel(path, async () => alive);
  channels.push(c);
  return c;
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "enjin-vm-channel-"));
});
afterEach(async () => {
  for (const c of channels.splice(0)) c.close();
  const s = server;
  server = undefined;
  if (s) await new Promise((resolve) => s.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

describe("GuestChannel", () => {
  it("is ready when the guest says ready, even after ignoring the first pings", async () => {
    const path = join(dir, "ctl.sock");
    let pings = 0;
    await peer(path, (line, s) => {
      if (line === "ping" && ++pings === 3) s.write("ready\n");
    });
    const c = channel(path);
    await c.ready(5_000);
    expect(c.isReady).toBe(true);
    expect(pings).toBe(3);
  });

  it("waits for qemu to make its socket, and counts a pong as ready", async () => {
    const path = join(dir, "ctl.sock");
    const c = channel(path);
    const ready = c.ready(5_000);
    await new Promise((resolve) => setTimeout(resolve, 100));
    await peer(path, (line, s) => {
      if (line === "ping") s.write("pong\r\n");
    });
    await ready;
    await c.ping(1_000);
  });

  it("gives up after its timeout when a running guest stays silent", async () => {
    const path = join(dir, "ctl.sock");
    await peer(path, () => {});
    await expect(channel(path).ready(300)).rejects.toThrow(/did not say ready .* within 300 ms/);
  });

  it("stops waiting at once when the VM is gone", async () => {
    const started = Date.now();
    await expect(channel(join(dir, "none.sock"), false).ready(60_000)).rejects.toThrow(
      /VM exited before its guest said ready/,
    );
    expect(Date.now() - started).toBeLessThan(30_000);
  });

  it("passes on the guest's own failure report", async () => {
    const path = join(dir, "ctl.sock");
    await peer(path, (line, s) => {
      if (line === "ping") s.write("fail httpd is not running\n");
    });
    const err = await channel(path)
      .ping(1_000)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GuestChannelError);
    expect(String(err)).toMatch(/the guest reports: httpd is not running/);
  });

  it("drops a guest that sends a line longer than the limit", async () => {
    const path = join(dir, "ctl.sock");
    await peer(path, (line, s) => {
      if (line === "ping") s.write("x".repeat(MAX_GUEST_LINE_BYTES + 1));
    });
    await expect(channel(path).ping(2_000)).rejects.toThrow(/longer than 256 bytes/);
  });

  it("times out a ping nobody answers", async () => {
    const path = join(dir, "ctl.sock");
    await peer(path, () => {});
    await expect(channel(path).ping(200)).rejects.toThrow(/did not answer ping within 200 ms/);
  });
});

describe("QmpClient", () => {
  const greeting = '{"QMP": {"version": {}, "capabilities": ["oob"]}}\r\n';

  it("negotiates, skips events and matches answers by id", async () => {
    const path = join(dir, "qmp.sock");
    const seen: string[] = [];
    await peer(
      path,
      (line, s) => {
        const msg = JSON.parse(line) as { execute: string; id: number };
        seen.push(msg.execute);
        if (msg.execute === "query-status")
          s.write(`{"event": "RESUME"}\r\n{"return": {"status": "running"}, "id": ${msg.id}}\r\n`);
        else s.write(`{"return": {}, "id": ${msg.id}}\r\n`);
      },
      greeting,
    );
    expect(await qmpExecute(path, "query-status", 1_000)).toEqual({ status: "running" });
    expect(seen).toEqual(["qmp_capabilities", "query-status"]);
  });

  it("turns a refusal into QmpError", async () => {
    const path = join(dir, "qmp.sock");
    await peer(
      path,
      (line, s) => {
        const msg = JSON.parse(line) as { execute: string; id: number };
        if (msg.execute === "qmp_capabilities") s.write(`{"return": {}, "id": ${msg.id}}\r\n`);
        else s.write(`{"error": {"class": "CommandNotFound", "desc": "nope"}, "id": ${msg.id}}\r\n`);
      },
      greeting,
    );
    const client = await QmpClient.connect(path, 1_000);
    try {
      await expect(client.execute("frobnicate")).rejects.toThrow(QmpError);
      await expect(client.execute("frobnicate")).rejects.toThrow(/CommandNotFound: nope/);
    } finally {
      client.close();
    }
  });

  it("fails on a monitor that never greets, and on no monitor at all", async () => {
    const path = join(dir, "qmp.sock");
    await peer(path, () => {});
    await expect(QmpClient.connect(path, 200)).rejects.toThrow(/did not greet within 200 ms/);
    await expect(QmpClient.connect(join(dir, "none.sock"), 200)).rejects.toThrow(QmpError);
  });
});
