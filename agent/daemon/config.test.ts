import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type ConfigHost, loadConfig, resolveConfig } from "./config.ts";
import { ConfigError, ConfigFileError } from "./errors.ts";

const host: ConfigHost = { cwd: "/work", homeDir: "/home/ada", uid: 1000, hostname: "Web-01.example.org" };

function issuesOf(fn: () => unknown): ConfigError["issues"] {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues;
  }
  throw new Error("expected a ConfigError");
}

describe("resolveConfig precedence", () => {
  it("uses defaults when nothing is set", () => {
    const { config, sources } = resolveConfig({ host });
    expect(config).toEqual({
      dataDir: "/home/ada/.local/state/enjin",
      ring: 2,
      transport: "zeromq",
      listen: "0.0.0.0:7470",
      natsUrl: null,
      natsCaFile: null,
      controlSocket: "/home/ada/.local/state/enjin/ringd.sock",
      logLevel: "info",
      logFile: null,
      name: "web-01",
      compartment: [],
      tiers: [],
      childPortRange: { firstPort: 20_000, lastPort: 20_999 },
      childrenDir: "/home/ada/.local/state/enjin-children",
    });
    expect(new Set(Object.values(sources))).toEqual(new Set(["default"]));
    expect(resolveConfig({ host: { ...host, uid: 0 } }).config.dataDir).toBe("/var/lib/enjin");
    expect(resolveConfig({ host, env: { XDG_STATE_HOME: "/st" } }).config.dataDir).toBe("/st/enjin");
  });

  it("takes each field from the highest layer: flag > env > file > default", () => {
    const { config, sources } = resolveConfig({
      host,
      flags: { ring: "0", tiers: ["web", "db"] },
      env: { ENJIN_RING: "1", ENJIN_TRANSPORT: "nats", ENJIN_TIERS: "cache", ENJIN_COMPARTMENT: "eu/dc1" },
      file: {
        path: "/etc/enjin/ringd.json",
        values: {
          ring: 2,
          transport: "zeromq",
          logLevel: "debug",
          compartment: ["us"],
          logFile: "logs/ringd.log",
        },
      },
    });
    expect(config).toMatchObject({
      ring: 0,
      transport: "nats",
      logLevel: "debug",
      tiers: ["web", "db"],
      compartment: ["eu", "dc1"],
      logFile: "/etc/enjin/logs/ringd.log",
      listen: "0.0.0.0:7470",
    });
    expect(sources).toMatchObject({
      ring: "flag",
      tiers: "flag",
      transport: "env",
      compartment: "env",
      logLevel: "file",
      logFile: "file",
      listen: "default",
    });
  });

  it("resolves relative paths against cwd for flags and env, and the socket under the data dir", () => {
    const { config } = resolveConfig({ host, flags: { dataDir: "state" }, env: { ENJIN_LOG_FILE: "-" } });
    expect(config.dataDir).toBe("/work/state");
    expect(config.controlSocket).toBe("/work/state/ringd.sock");
    expect(config.logFile).toBeNull();
  });
});

describe("resolveConfig validation", () => {
  it("names the field, its source and what is allowed, for every bad value at once", () => {
    const issues = issuesOf(() =>
      resolveConfig({
        host,
        flags: { ring: "3" },
        env: { ENJIN_TRANSPORT: "carrier-pigeon", ENJIN_TIERS: "web,web" },
        file: { path: "/etc/enjin/ringd.json", values: { listen: "nowhere", name: "Bad Name" } },
      }),
    );
    expect(issues).toEqual([
      { field: "ring", source: "flag", origin: "--ring", got: "3", allowed: "0, 1 or 2" },
      {
        field: "transport",
        source: "env",
        origin: "ENJIN_TRANSPORT",
        got: '"carrier-pigeon"',
        allowed: expect.stringContaining('"zeromq" or "nats"'),
      },
      expect.objectContaining({
        field: "listen",
        source: "file",
        origin: "/etc/enjin/ringd.json",
        got: '"nowhere"',
      }),
      expect.objectContaining({ field: "name", source: "file", allowed: expect.stringContaining("a label") }),
      expect.objectContaining({
        field: "tiers",
        source: "env",
        origin: "ENJIN_TIERS",
        allowed: expect.stringContaining("distinct"),
      }),
    ]);
  });

  it("writes a message that says field, source and allowed values", () => {
    try {
      resolveConfig({ host, env: { ENJIN_RING: "two" } });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).name).toBe("ConfigError");
      expect((err as Error).message).toBe(
        'config field "ring" from env ENJIN_RING: got "two"; allowed: 0, 1 or 2',
      );
    }
  });

  it("refuses unknown keys and dataDir in the file", () => {
    const issues = issuesOf(() =>
      resolveConfig({ host, file: { path: "/f.json", values: { rnig: 1, dataDir: "/x" } } }),
    );
    expect(issues.map((i) => [i.field, i.source])).toEqual([
      ["rnig", "file"],
      ["dataDir", "file"],
    ]);
    expect(issues[0]!.allowed).toContain("ring");
  });

  it("checks socket path length, URL schemes, ports and compartment depth", () => {
    const long = `/${"s".repeat(110)}`;
    const issues = issuesOf(() =>
      resolveConfig({
        host,
        flags: { controlSocket: long, natsUrl: "http://x:4222", listen: "1.2.3.4:70000" },
        env: { ENJIN_COMPARTMENT: "a/b/c/d/e/f/g/h/i" },
      }),
    );
    expect(issues.map((i) => i.field)).toEqual(["listen", "natsUrl", "controlSocket", "compartment"]);
    expect(resolveConfig({ host, flags: { listen: "[::1]:7470" } }).config.listen).toBe("[::1]:7470");
    for (const bad of ["ws://n1:4222", "nats://", "nats://a:4222,", "tls://a:1, http://b:2"]) {
      const flags = { transport: "nats", natsUrl: bad, natsCaFile: "/ca.pem" };
      expect(issuesOf(() => resolveConfig({ host, flags })).map((i) => i.field)).toEqual(["natsUrl"]);
    }
  });
});

describe("children: childPortRange and childrenDir", () => {
  it("reads FIRST-LAST from a flag, the environment or the file (string or object)", () => {
    const fromFlag = resolveConfig({ host, flags: { childPortRange: "30000-30009" } });
    expect(fromFlag.config.childPortRange).toEqual({ firstPort: 30_000, lastPort: 30_009 });
    expect(fromFlag.sources.childPortRange).toBe("flag");
    const fromEnv = resolveConfig({ host, env: { ENJIN_CHILD_PORTS: " 4000 - 4000 " } });
    expect(fromEnv.config.childPortRange).toEqual({ firstPort: 4_000, lastPort: 4_000 });
    for (const values of [
      { childPortRange: "5000-5100" },
      { childPortRange: { firstPort: 5_000, lastPort: 5_100 } },
    ])
      expect(
        resolveConfig({ host, file: { path: "/etc/enjin/ringd.json", values } }).config.childPortRange,
      ).toEqual({ firstPort: 5_000, lastPort: 5_100 });
  });

  it("refuses a range that is not two ports in order, naming the field and its source", () => {
    for (const bad of ["20000", "0-10", "100-70000", "2000-1000", "a-b", "1-2-3"]) {
      const issues = issuesOf(() => resolveConfig({ host, flags: { childPortRange: bad } }));
      expect(issues).toEqual([
        expect.objectContaining({ field: "childPortRange", source: "flag", origin: "--child-ports" }),
      ]);
      expect(issues[0]!.allowed).toMatch(/FIRST-LAST/);
    }
    const file = { path: "/etc/enjin/ringd.json", values: { childPortRange: { firstPort: 1 } } };
    expect(issuesOf(() => resolveConfig({ host, file })).map((i) => i.field)).toEqual(["childPortRange"]);
  });

  it("puts children beside the data dir by default, and never inside it or around it", () => {
    const moved = resolveConfig({ host, flags: { dataDir: "/srv/n1" } }).config;
    expect(moved.childrenDir).toBe("/srv/n1-children");
    expect(resolveConfig({ host, flags: { childrenDir: "kids" } }).config.childrenDir).toBe("/work/kids");
    for (const childrenDir of ["/srv/n1", "/srv/n1/children", "/srv"]) {
      const issues = issuesOf(() => resolveConfig({ host, flags: { dataDir: "/srv/n1", childrenDir } }));
      expect(issues.map((i) => [i.field, i.source])).toEqual([["childrenDir", "flag"]]);
      expect(issues[0]!.allowed).toMatch(/outside dataDir/);
    }
    // A sibling whose name merely starts with the data dir's is fine.
    expect(
      resolveConfig({ host, flags: { dataDir: "/srv/n1", childrenDir: "/srv/n10" } }).config.childrenDir,
    ).toBe("/srv/n10");
  });
});

describe("an existing NATS cluster (natsUrl)", () => {
  const nats = { transport: "nats", natsUrl: "tls://n1:4222, nats://n2:4222", natsCaFile: "ca.pem" };

  it("is not set by default, which is told apart from a URL given in any layer", () => {
    const unset = resolveConfig({ host, env: { ENJIN_TRANSPORT: "nats" } });
    expect(unset.config).toMatchObject({ natsUrl: null, natsCaFile: null });
    expect(unset.sources).toMatchObject({ natsUrl: "default", natsCaFile: "default" });
    const fromEnv = resolveConfig({
      host,
      env: { ENJIN_TRANSPORT: "nats", ENJIN_NATS_URL: "tls://n1:4222", ENJIN_NATS_CA_FILE: "certs/ca.pem" },
    });
    expect(fromEnv.config).toMatchObject({ natsUrl: "tls://n1:4222", natsCaFile: "/work/certs/ca.pem" });
    expect(fromEnv.sources).toMatchObject({ natsUrl: "env", natsCaFile: "env" });
    const fromFile = resolveConfig({
      host,
      file: { path: "/etc/enjin/ringd.json", values: { ...nats, natsCaFile: "tls/ca.pem" } },
    });
    expect(fromFile.config).toMatchObject({ natsUrl: nats.natsUrl, natsCaFile: "/etc/enjin/tls/ca.pem" });
    expect(fromFile.sources).toMatchObject({ natsUrl: "file", natsCaFile: "file" });
    // A file may say null explicitly: the same as not set.
    const explicitNull = resolveConfig({ host, file: { path: "/f.json", values: { natsUrl: null } } });
    expect(explicitNull.config.natsUrl).toBeNull();
  });

  it("requires the CA file with a URL, and the nats transport", () => {
    expect(resolveConfig({ host, flags: nats }).config).toMatchObject({
      transport: "nats",
      natsUrl: nats.natsUrl,
      natsCaFile: "/work/ca.pem",
    });
    const noCa = issuesOf(() => resolveConfig({ host, flags: { ...nats, natsCaFile: undefined } }));
    expect(noCa).toEqual([
      expect.objectContaining({
        field: "natsCaFile",
        source: "default",
        allowed: expect.stringContaining("required"),
      }),
    ]);
    const zeromq = issuesOf(() => resolveConfig({ host, flags: { ...nats, transport: "zeromq" } }));
    expect(zeromq).toEqual([
      expect.objectContaining({
        field: "natsUrl",
        source: "flag",
        origin: "--nats-url",
        allowed: expect.stringContaining('only with transport "nats"'),
      }),
    ]);
    const caAlone = issuesOf(() => resolveConfig({ host, env: { ENJIN_NATS_CA_FILE: "/ca.pem" } }));
    expect(caAlone).toEqual([
      expect.objectContaining({ field: "natsCaFile", source: "env", origin: "ENJIN_NATS_CA_FILE" }),
    ]);
  });

  it("leaves a field that is bad on its own to its own issue", () => {
    const issues = issuesOf(() => resolveConfig({ host, flags: { natsUrl: "carrier-pigeon" } }));
    expect(issues.map((i) => i.field)).toEqual(["natsUrl"]);
    expect(issues[0]!.allowed).toContain("nats: or tls:");
  });
});

describe("loadConfig", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "enjin-config-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("reads <dataDir>/ringd.json, and runs on defaults when it is absent", async () => {
    const empty = await loadConfig({ host, flags: { dataDir: dir } });
    expect(empty.sources.ring).toBe("default");
    await writeFile(join(dir, "ringd.json"), JSON.stringify({ ring: 1, tiers: ["web"] }));
    const loaded = await loadConfig({ host, env: { ENJIN_DATA_DIR: dir } });
    expect(loaded.file).toBe(join(dir, "ringd.json"));
    expect(loaded.config).toMatchObject({ ring: 1, tiers: ["web"], dataDir: dir });
    expect(loaded.sources).toMatchObject({ ring: "file", dataDir: "env" });
  });

  it("requires a file named by --config, and rejects one that is not JSON", async () => {
    await expect(loadConfig({ host, configFile: join(dir, "missing.json") })).rejects.toBeInstanceOf(
      ConfigFileError,
    );
    await writeFile(join(dir, "bad.json"), "{ ring: 1 ");
    const err = await loadConfig({ host, env: { ENJIN_CONFIG: join(dir, "bad.json") } }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConfigFileError);
    expect((err as Error).message).toContain("not valid JSON");
    await writeFile(join(dir, "list.json"), "[1]");
    await expect(loadConfig({ host, configFile: join(dir, "list.json") })).rejects.toBeInstanceOf(
      ConfigFileError,
    );
  });
});
