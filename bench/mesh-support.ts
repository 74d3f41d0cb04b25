/**
 * What bench/mesh.ts measures with, besides the mesh: percentiles, free ports, bounded waits,
 * process memory from /proc, process start-up, and the baselines measured in the same run (raw
 * NATS request/reply and fan-out through a plain nats-server; N concurrent execFile("true")).
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes, randomInt } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createServer } from "node:net";
import { connect, type NatsConnection } from "nats";
import { RINGD_PORT_BLOCK } from "../agent/node/ringd-ports.ts";
import type { RingdProcesses } from "../scripts/ringd-process.ts";
import { freePort } from "../test/support/free-port.ts";

/** p50 / p99 / max of a sample, in ms (one decimal). */
export interface Percentiles {
  readonly n: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

/** Memory of one process, MiB. */
export interface Memory {
  /** VmRSS: every resident page mapped, shared ones (the node binary, libraries) included. */
  readonly rssMiB: number;
  /** Private_Clean + Private_Dirty: resident pages no other process maps. */
  readonly privateMiB: number;
  /** Pss: private pages plus each shared page divided by the processes sharing it. */
  readonly pssMiB: number;
}

/** How long any one wait may take. */
export const WAIT_MS = 120_000;

/** Resolves after `ms`. */
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** p50 / p99 / max of `xs`. */
export function percentiles(xs: readonly number[]): Percentiles {
  if (xs.length === 0) return { n: 0, p50: Number.NaN, p99: Number.NaN, max: Number.NaN };
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
  const r1 = (x: number) => Math.round(x * 10) / 10;
  return { n: s.length, p50: r1(at(0.5)), p99: r1(at(0.99)), max: r1(s[s.length - 1]!) };
}

/** A failure that ends a wait at once (other errors of a probe mean "not yet"). */
export class Fatal extends Error {}

/** Is `port` free on 127.0.0.1 right now? */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });
}

/**
 * Listen ports are drawn from below the kernel's ephemeral range (net.ipv4.ip_local_port_range
 * starts at 32768), so that no outgoing connection of the mesh (a NATS client, a certificate fetch,
 * a ZeroMQ peer) can take one between this check and ringd's bind.
 */
const NODE_PORTS_FROM = 20_000;
const NODE_PORTS_TO = 32_767;

/**
 * A node's listen port PORT, with the whole block PORT .. PORT + RINGD_PORT_BLOCK - 1 free now and
 * kept out of `taken` from then on: a ringd binds PORT, + 1 (joins) and + 4 (its children's
 * network), a NATS seed's nats-server + 2 and + 3 (agent/node/ringd-ports.ts). Others' meshes on
 * this machine may pick ports here too; the check makes a clash unlikely, not impossible.
 */
export async function freeNodePort(taken: Set<number>): Promise<number> {
  const block = Array.from({ length: RINGD_PORT_BLOCK }, (_, d) => d);
  for (let attempt = 0; attempt < 1_000; attempt++) {
    const port = NODE_PORTS_FROM + randomInt(NODE_PORTS_TO - NODE_PORTS_FROM - RINGD_PORT_BLOCK);
    if (block.some((d) => taken.has(port + d))) continue;
    if (!(await Promise.all(block.map((d) => portFree(port + d)))).every(Boolean)) continue;
    for (const d of block) taken.add(port + d);
    return port;
  }
  throw new Error(`no ${RINGD_PORT_BLOCK} consecutive free ports in ${NODE_PORTS_FROM}-${NODE_PORTS_TO}`);
}

/** Poll `probe` until it gives a value; a `Fatal` it throws ends the wait at once. */
export async function until<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  intervalMs = 10,
  timeoutMs = WAIT_MS,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const got = await probe().catch((err: unknown) => {
      if (err instanceof Fatal) throw err;
      return undefined;
    });
    if (got !== undefined) return got;
    await sleep(intervalMs);
  }
  throw new Error(`timed out (${timeoutMs} ms) waiting for ${what}`);
}

/** VmRSS, Private_Clean + Private_Dirty and Pss (smaps_rollup) of `pid`. */
export async function memoryOf(pid: number): Promise<Memory> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const rollup = await readFile(`/proc/${pid}/smaps_rollup`, "utf8");
  const kb = (text: string, field: string) =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text)?.[1]);
  const mib = (k: number) => Math.round((k / 1024) * 10) / 10;
  return {
    rssMiB: mib(kb(status, "VmRSS")),
    privateMiB: mib(kb(rollup, "Private_Clean") + kb(rollup, "Private_Dirty")),
    pssMiB: mib(kb(rollup, "Pss")),
  };
}

/** The exit code of `child` once it exits (-1 for a signal). */
export function exited(child: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve(child.exitCode);
    child.once("exit", (code) => resolve(code ?? -1));
  });
}

/** Wall time of spawning `args` until it exits (ms), `count` times. */
export async function timeExit(procs: RingdProcesses, args: string[], count: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    const code = await exited(procs.spawnNode(args));
    if (code !== 0) throw new Error(`node ${args.join(" ")} exited ${code}`);
    out.push(performance.now() - t0);
  }
  return out;
}

/** Wall time of `fanout` concurrent execFile("true") until every one exits, `count` times. */
export async function measureSpawnTrue(fanout: number, count: number): Promise<number[]> {
  const once = () =>
    new Promise<void>((resolve, reject) =>
      execFile("true", (err) => (err === null ? resolve() : reject(err))),
    );
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    await Promise.all(Array.from({ length: fanout }, once));
    out.push(performance.now() - t0);
  }
  return out;
}

/** Raw NATS request/reply on a plain nats-server: one responder, and a fan-out to `fanout`. */
export async function measureNatsBaseline(
  procs: RingdProcesses,
  dir: string,
  fanout: number,
  count: number,
): Promise<{ request: number[]; fanout: number[] }> {
  const port = await freePort();
  const server = spawn("nats-server", ["-a", "127.0.0.1", "-p", String(port), "--store_dir", dir], {
    stdio: "ignore",
  });
  server.on("error", () => undefined);
  procs.track(server);
  const conns: NatsConnection[] = [];
  try {
    const open = () =>
      until("nats-server", async () => {
        const nc = await connect({ servers: `nats://127.0.0.1:${port}`, maxReconnectAttempts: 0 });
        conns.push(nc);
        return nc;
      });
    const client = await open();
    // Each responder on its own connection, as each agent would be.
    for (let i = 0; i < fanout; i++) {
      const nc = await open();
      nc.subscribe("bench.fan", { callback: (_err, m) => m.respond(m.data) });
      if (i === 0) nc.subscribe("bench.one", { callback: (_err, m) => m.respond(m.data) });
      await nc.flush();
    }
    const payload = randomBytes(200);
    const request: number[] = [];
    const fan: number[] = [];
    for (let i = 0; i < count + 3; i++) {
      const t0 = performance.now();
      await client.request("bench.one", payload, { timeout: 5_000 });
      if (i >= 3) request.push(performance.now() - t0); // the first few warm up
    }
    for (let i = 0; i < count + 3; i++) {
      const inbox = `bench.reply.${i}`;
      let got = 0;
      const t0 = performance.now();
      const all = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("NATS fan-out: replies missing")), 5_000);
        client.subscribe(inbox, {
          max: fanout,
          callback: () => {
            if (++got === fanout) {
              clearTimeout(timer);
              resolve();
            }
          },
        });
      });
      client.publish("bench.fan", payload, { reply: inbox });
      await all;
      if (i >= 3) fan.push(performance.now() - t0);
    }
    return { request, fanout: fan };
  } finally {
    await Promise.all(conns.map((c) => c.close().catch(() => undefined)));
    server.kill("SIGTERM");
    await exited(server);
  }
}
