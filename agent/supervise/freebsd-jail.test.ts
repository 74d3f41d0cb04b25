import { describe, expect, it } from "vitest";
import type { ChildSpec } from "./driver.ts";
import { InvalidSpecError } from "./errors.ts";
import {
  confQuote,
  FREEBSD_ALLOW_OFF,
  type FreeBsdJailInput,
  freebsdJailName,
  freebsdJailParams,
  jailCommands,
  jailConf,
  rctlRules,
  shQuote,
} from "./freebsd-jail.ts";

const spec: ChildSpec = {
  name: "web-1",
  command: ["/usr/local/bin/node", "server.js"],
  env: { NODE_ENV: "production" },
};
const input = (over: Partial<FreeBsdJailInput> = {}): FreeBsdJailInput => ({
  spec,
  port: 4100,
  dir: "/var/enjin/children/web-1",
  logPath: "/var/log/enjin/web-1.log",
  basePath: "/usr/local/enjin/base",
  jailsDir: "/usr/local/enjin/jails",
  user: "enjail-web-1",
  ...over,
});

describe("freebsdJailParams + jailConf", () => {
  it("renders the golden jail.conf for a plain child", () => {
    const conf = jailConf(freebsdJailName("web-1"), freebsdJailParams(input()));
    expect(conf).toBe(
      [
        "enjin_web_1 {",
        '\tpath = "/usr/local/enjin/jails/enjin_web_1";',
        '\thost.hostname = "web-1";',
        // The host's network, as on Linux: the child answers on PORT from the host.
        '\tip4 = "inherit";',
        '\tip6 = "inherit";',
        // Removed when its last process exits.
        '\tpersist = "false";',
        // Read-only base, the child's directory read-write at /app, a private /tmp.
        '\tmount = "/usr/local/enjin/base /usr/local/enjin/jails/enjin_web_1 nullfs ro 0 0";',
        '\tmount += "/var/enjin/children/web-1 /usr/local/enjin/jails/enjin_web_1/app nullfs rw 0 0";',
        '\tmount += "tmpfs /usr/local/enjin/jails/enjin_web_1/tmp tmpfs rw 0 0";',
        '\tmount.devfs = "true";',
        '\tdevfs_ruleset = "4";',
        '\tsecurelevel = "3";',
        '\tenforce_statfs = "2";',
        '\tchildren.max = "0";',
        ...FREEBSD_ALLOW_OFF.map((p) => `\t${p} = "false";`),
        '\tsysvmsg = "new";',
        '\tsysvsem = "new";',
        '\tsysvshm = "new";',
        '\texec.clean = "true";',
        '\texec.system_jail_user = "true";',
        '\texec.jail_user = "enjail-web-1";',
        '\texec.consolelog = "/var/log/enjin/web-1.log";',
        // The environment is replaced (env -i): PATH, HOME, the spec's env, PORT.
        "\texec.start = \"cd /app && exec /usr/bin/env -i 'PATH=/usr/local/bin:/usr/bin:/bin' 'HOME=/app' 'NODE_ENV=production' 'PORT=4100' '/usr/local/bin/node' 'server.js'\";",
        '\tstop.timeout = "10";',
        "}",
        "",
      ].join("\n"),
    );
  });

  it("switches every allow.* off, allows no child jails and does not persist", () => {
    const params = new Map(freebsdJailParams(input()).map(([k, v]) => [k, v]));
    for (const p of [
      "allow.set_hostname",
      "allow.raw_sockets",
      "allow.mount",
      "allow.sysvipc",
      "allow.chflags",
    ])
      expect(params.get(p), p).toBe(false);
    expect(params.get("children.max")).toBe(0);
    expect(params.get("persist")).toBe(false);
    expect(params.get("exec.jail_user")).toBe("enjail-web-1");
  });

  it("uses the jail's own addresses when given, and disables IPv6 then", () => {
    const params = new Map(freebsdJailParams(input({ ip4: ["192.0.2.10"] })));
    expect(params.get("ip4.addr")).toEqual(["192.0.2.10"]);
    expect(params.get("ip6")).toBe("disable");
    expect(params.has("ip4")).toBe(false);
  });

  it("runs ./programs from the child's directory and uses the spec's hostname", () => {
    const params = new Map(
      freebsdJailParams(
        input({ spec: { name: "web-1", command: ["./run", "a b"], driver: { hostname: "box" } } }),
      ),
    );
    expect(params.get("exec.start")).toMatch(/ '\/app\/run' 'a b'$/);
    expect(params.get("host.hostname")).toBe("box");
  });

  it("refuses what it cannot express safely", () => {
    const bad: Partial<FreeBsdJailInput>[] = [
      { user: "root" },
      { user: "Bad User" },
      { dir: "/var/enjin/my child" },
      { dir: "relative" },
      { basePath: "/" },
      { port: 0 },
      { ip4: [] },
      { ip4: ["300.1.1.1"] },
      { stopTimeoutSeconds: 0 },
      { spec: { ...spec, driver: { roBinds: ["/opt"] } } },
      { spec: { ...spec, env: { PORT: "1" } } },
      { spec: { ...spec, limits: { pids: 0 } } },
      { spec: { ...spec, name: "Web" } },
    ];
    for (const over of bad)
      expect(() => freebsdJailParams(input(over)), JSON.stringify(over)).toThrow(InvalidSpecError);
  });
});

describe("quoting", () => {
  it("escapes jail.conf specials and refuses control characters", () => {
    expect(confQuote('a "b" \\ $name')).toBe('"a \\"b\\" \\\\ \\$name"');
    expect(() => confQuote("a\nb")).toThrow(InvalidSpecError);
  });
  it("quotes words for sh", () => {
    expect(shQuote("it's")).toBe("'it'\\''s'");
    expect(shQuote("$HOME `x`")).toBe("'$HOME `x`'");
  });
  it("keeps a spec's env value with quotes and dollars literal through both layers", () => {
    const params = new Map(freebsdJailParams(input({ spec: { ...spec, env: { X: `a'b"$c` } } })));
    const start = params.get("exec.start") as string;
    expect(start).toContain(`'X=a'\\''b"$c'`);
    expect(jailConf("j", [["exec.start", start]])).toContain(`'X=a'\\\\''b\\"\\$c'`);
  });
});

describe("rctlRules and commands", () => {
  it("turns every limit into a deny rule on the jail", () => {
    expect(
      rctlRules("web-1", {
        ...spec,
        limits: { memoryBytes: 268435456, pids: 64, openFiles: 1024, cpuMillis: 250 },
      }),
    ).toEqual([
      "jail:enjin_web_1:memoryuse:deny=268435456",
      "jail:enjin_web_1:maxproc:deny=64",
      "jail:enjin_web_1:openfiles:deny=1024",
      "jail:enjin_web_1:pcpu:deny=25",
    ]);
    expect(rctlRules("web-1", spec)).toEqual([]);
    expect(rctlRules("web-1", { ...spec, limits: { cpuMillis: 1 } })).toEqual([
      "jail:enjin_web_1:pcpu:deny=1",
    ]);
  });
  it("starts and removes through the conf file", () => {
    expect(jailCommands("/var/enjin/jails.conf", "enjin_web_1")).toEqual({
      start: ["/usr/sbin/jail", "-f", "/var/enjin/jails.conf", "-c", "enjin_web_1"],
      remove: ["/usr/sbin/jail", "-f", "/var/enjin/jails.conf", "-r", "enjin_web_1"],
    });
  });
});
