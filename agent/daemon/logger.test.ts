import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { eventually } from "../../test/support/eventually.ts";
import { createLogger, isSecretKey, LOG_FILE_MODE, REDACTED, redactForLog } from "./logger.ts";

/** A logger that writes into an array of lines. */
function capture(logLevel: "info" | "debug" = "info") {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      lines.push(...String(chunk).split("\n").filter(Boolean));
      done();
    },
  });
  return { log: createLogger({ logLevel, logFile: null }, { destination }), lines };
}

describe("createLogger", () => {
  it("never writes a secretKey or a secret, at any depth, in objects or child bindings", () => {
    const { log, lines } = capture();
    const secretKey = "c2VjcmV0LWtleS1ieXRlcy1kby1ub3QtbG9n";
    const secret = "hunter2-token-secret";
    log.info({ secretKey, secret, node: "web-01" }, "joined");
    log.info({ token: { id: "t1", secret }, peers: [{ privateKey: secretKey, name: "n2" }] }, "token used");
    const child = log.child({ session: { secret } });
    child.warn({ nested: { deeper: { secret_key: secretKey } } }, "child");
    child.child({ grandchild: 1, password: secret }).setBindings({ seed: secretKey });
    log.error(Object.assign(new Error("join failed", { cause: { secret } }), { secretKey }), "boom");
    const text = lines.join("\n");
    expect(lines).toHaveLength(4);
    expect(JSON.parse(lines[2]!).session).toEqual({ secret: REDACTED });
    expect(text).not.toContain(secretKey);
    expect(text).not.toContain(secret);
    const first = JSON.parse(lines[0]!);
    expect(first).toMatchObject({
      level: "info",
      msg: "joined",
      node: "web-01",
      secretKey: REDACTED,
      secret: REDACTED,
    });
    expect(JSON.parse(lines[1]!).peers[0]).toEqual({ privateKey: REDACTED, name: "n2" });
    expect(JSON.parse(lines[3]!).err).toMatchObject({
      type: "Error",
      message: "join failed",
      cause: { secret: REDACTED },
      secretKey: REDACTED,
    });
  });

  it("writes to a log file it creates with mode 0600", async () => {
    const dir = await mkdtemp(join(tmpdir(), "enjin-log-"));
    try {
      const logFile = join(dir, "logs", "ringd.log");
      const log = createLogger({ logLevel: "info", logFile });
      log.info({ secret: "s3cr3t", node: "n1" }, "to a file");
      const text = await eventually(async () => {
        const content = await readFile(logFile, "utf8");
        expect(content).toContain("to a file");
        return content;
      });
      expect(text).not.toContain("s3cr3t");
      expect((await stat(logFile)).mode & 0o777).toBe(LOG_FILE_MODE);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("logs at the configured level and above only", () => {
    const { log, lines } = capture("info");
    log.debug("hidden");
    log.info("shown");
    expect(lines.map((l) => JSON.parse(l).msg)).toEqual(["shown"]);
  });
});

describe("redactForLog", () => {
  it("matches secret-named keys however they are spelled, and leaves public ones", () => {
    for (const key of [
      "secretKey",
      "secret_key",
      "SECRET",
      "privateKey",
      "password",
      "seed",
      "token",
      "mac",
      "nkey",
    ]) {
      expect(isSecretKey(key), key).toBe(true);
    }
    for (const key of ["publicKey", "tokenId", "keyId", "node", "ring", "monkey"]) {
      expect(isSecretKey(key), key).toBe(false);
    }
  });

  it("cuts cycles and depth, and shows bytes as hex or a length", () => {
    const loop: Record<string, unknown> = { name: "a" };
    loop.self = loop;
    expect(redactForLog(loop)).toEqual({ name: "a", self: "[circular]" });
    expect(redactForLog({ key: new Uint8Array([1, 255]) })).toEqual({ key: REDACTED });
    expect(redactForLog({ id: new Uint8Array([1, 255]), big: new Uint8Array(100) })).toEqual({
      id: "01ff",
      big: "<100 bytes>",
    });
    let deep: unknown = "bottom";
    for (let i = 0; i < 20; i++) deep = { d: deep };
    expect(JSON.stringify(redactForLog(deep))).toContain("[truncated]");
  });
});
