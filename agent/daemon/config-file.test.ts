import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type ConfigHost, loadConfig, resolveConfig } from "./config.ts";
import { configFileValues, mergeConfigFile } from "./config-file.ts";
import { ConfigFileError } from "./errors.ts";

const host: ConfigHost = { cwd: "/work", homeDir: "/home/ada", uid: 1000, hostname: "web-01" };

describe("configFileValues", () => {
  it("takes what flags, env and a file set, not the defaults, and never dataDir", () => {
    const resolved = resolveConfig({
      host,
      flags: { dataDir: "state", childPortRange: "31000-31099", childrenDir: "kids", tiers: ["web", "db"] },
      env: { ENJIN_TRANSPORT: "nats", ENJIN_NATS_URL: "tls://n1:4222", ENJIN_NATS_CA_FILE: "ca.pem" },
      file: { path: "/etc/enjin/ringd.json", values: { logLevel: "warn", logFile: "log/ringd.log" } },
    });
    expect(configFileValues(resolved)).toEqual({
      transport: "nats",
      natsUrl: "tls://n1:4222",
      natsCaFile: "/work/ca.pem",
      logLevel: "warn",
      logFile: "/etc/enjin/log/ringd.log",
      tiers: ["web", "db"],
      childPortRange: "31000-31099",
      childrenDir: "/work/kids",
    });
    expect(configFileValues(resolved, ["transport", "tiers"])).not.toHaveProperty("transport");
  });

  it("gives a file that, read back with no flags, resolves to the same configuration", () => {
    const given = resolveConfig({
      host,
      flags: {
        dataDir: "/srv/node",
        ring: "1",
        listen: "10.0.0.5:7470",
        name: "edge",
        compartment: "eu/dc1",
        childPortRange: "40000-40009",
        controlSocket: "/run/enjin.sock",
        logFile: "-",
      },
    });
    const values = configFileValues(given);
    const back = resolveConfig({
      host: { ...host, cwd: "/elsewhere", hostname: "other" },
      flags: { dataDir: "/srv/node" },
      file: { path: "/srv/node/ringd.json", values: JSON.parse(JSON.stringify(values)) },
    });
    expect(back.config).toEqual(given.config);
  });
});

describe("mergeConfigFile", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "enjin-config-file-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("creates ringd.json (0600) and later replaces only the fields given", async () => {
    const path = await mergeConfigFile(dir, { ring: 0, tiers: ["web"] });
    expect(path).toBe(join(dir, "ringd.json"));
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    await mergeConfigFile(dir, { tiers: ["db"], childPortRange: "30000-30009" });
    expect(JSON.parse(await readFile(path, "utf8"))).toEqual({
      ring: 0,
      tiers: ["db"],
      childPortRange: "30000-30009",
    });
    const { config, sources } = await loadConfig({ host, flags: { dataDir: dir } });
    expect(config.childPortRange).toEqual({ firstPort: 30_000, lastPort: 30_009 });
    expect(sources.childPortRange).toBe("file");
  });

  it("refuses to overwrite a file that is not a JSON object, and leaves it as it was", async () => {
    const path = join(dir, "ringd.json");
    for (const text of ["{ not json", "[1, 2]"]) {
      await writeFile(path, text);
      await expect(mergeConfigFile(dir, { ring: 0 })).rejects.toBeInstanceOf(ConfigFileError);
      expect(await readFile(path, "utf8")).toBe(text);
    }
  });
});
