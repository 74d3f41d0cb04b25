/**
 * A `ringd start` that fails part-way exits with its error, through the real binary: a seed whose
 * join port (PORT + 1) another program holds has already connected to NATS and started its
 * nats-server (or bound its ZeroMQ peer socket) when the join endpoint's bind fails. What it opened
 * is closed again, so the process ends instead of running on with no control socket (as it did:
 * the NATS connection kept it alive), and the nats-server it started is gone with it.
 */
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RingdProcesses } from "../../scripts/ringd-process.ts";
import { NATS_PID_FILE } from "../nats-server-files.ts";
import { NATS_DATA_DIR } from "./nats-link.ts";
import { JOIN_PORT_OFFSET } from "./ringd-ports.ts";

const procs = new RingdProcesses();
// Below the ephemeral ports (32768+), in a stretch no other integration file uses.
const P = 27_910 + 10 * Math.floor(Math.random() * 8);
/** A start still running after this long fails the test (afterAll kills it). */
const START_LIMIT_MS = 45_000;

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "enjin-start-fails-"));
});

afterAll(async () => {
  await procs.stopAll(1_000); // a ringd that hangs in start ignores SIGTERM: SIGKILL soon
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

function listenOn(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const holder = createServer();
    holder.once("error", reject);
    holder.listen(port, "127.0.0.1", () => resolve(holder));
  });
}

describe("ringd start that fails after it opened its transport", () => {
  for (const [i, transport] of (["nats", "zeromq"] as const).entries()) {
    it(`exits with the error on ${transport}, leaving nothing running`, async () => {
      const port = P + 5 * i;
      const dataDir = join(dir, transport);
      const init = await procs.run("ringd", [
        "init",
        "--data-dir",
        dataDir,
        "--listen",
        `127.0.0.1:${port}`,
        "--transport",
        transport,
      ]);
      expect(init.code, init.stderr).toBe(0);
      const holder = await listenOn(port + JOIN_PORT_OFFSET);
      try {
        const start = procs.spawn("ringd", ["start", "--data-dir", dataDir, "--log-level", "warn"]);
        const code = await new Promise<number | string>((resolve) => {
          const timer = setTimeout(() => resolve("still running"), START_LIMIT_MS);
          start.once("exit", (c, signal) => {
            clearTimeout(timer);
            resolve(c ?? signal ?? -1);
          });
        });
        expect(code, procs.tail(start)).toBeTypeOf("number");
        expect(code).toBeGreaterThan(0);
        expect(procs.tail(start)).toMatch(/already in use/);
      } finally {
        await new Promise((r) => holder.close(r));
      }
      if (transport === "nats") {
        const pidFile = join(dataDir, NATS_DATA_DIR, NATS_PID_FILE);
        expect(existsSync(pidFile), "the seed started its nats-server before the bind failed").toBe(true);
        const pid = Number(await readFile(pidFile, "utf8"));
        expect(existsSync(`/proc/${pid}`), `nats-server ${pid} still runs`).toBe(false);
      }
    });
  }
});
