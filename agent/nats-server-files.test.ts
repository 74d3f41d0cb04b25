import { describe, expect, it } from "vitest";
import { hostPort, type NatsConfigInput, renderNatsConfig } from "./nats-server-files.ts";

const base: NatsConfigInput = {
  serverName: "enjin-4222",
  host: "127.0.0.1",
  port: 4222,
  monitorPort: 8222,
  maxPayloadBytes: 266_240,
  certPath: "/d/nats-cert.pem",
  keyPath: "/d/nats-key.pem",
  pidPath: "/d/nats-server.pid",
  users: [
    { nkey: "UNOBODY" },
    { nkey: "UMEMBER", permissions: { publish: ["m.n.*"], subscribe: ["m.n.me"] } },
  ],
};

describe("nats-server config text", () => {
  it("requires TLS, lists nkey users with their permissions, and sets max_payload", () => {
    const text = renderNatsConfig(base);
    expect(text.split("\n")).toEqual([
      "# Written by enjin's launcher (agent/nats-server.ts); rewritten on every reload.",
      'server_name: "enjin-4222"',
      'listen: "127.0.0.1:4222"',
      'http: "127.0.0.1:8222"',
      "max_payload: 266240",
      'pid_file: "/d/nats-server.pid"',
      "tls {",
      '  cert_file: "/d/nats-cert.pem"',
      '  key_file: "/d/nats-key.pem"',
      "}",
      "authorization {",
      "  users: [",
      '    { nkey: "UNOBODY" }',
      '    { nkey: "UMEMBER", permissions: { publish: { allow: ["m.n.*"] }, subscribe: { allow: ["m.n.me"] } } }',
      "  ]",
      "}",
      "",
    ]);
  });

  it("writes an empty allow-list as deny-all, since nats-server reads an empty allow as allow-all", () => {
    const text = renderNatsConfig({
      ...base,
      users: [{ nkey: "UDEAF", permissions: { publish: ["m.n.*"], subscribe: [] } }],
    });
    expect(text).toContain(
      '{ nkey: "UDEAF", permissions: { publish: { allow: ["m.n.*"] }, subscribe: { deny: [">"] } } }',
    );
  });

  it("adds a cluster block whose routes always run TLS against the trusted certificates", () => {
    const text = renderNatsConfig({
      ...base,
      cluster: {
        name: "enjin",
        host: "::1",
        port: 6222,
        routes: ["nats-route://[::1]:6223"],
        caPath: "/d/ca.pem",
        advertise: "[::1]:6222",
      },
      clientAdvertise: "[::1]:4222",
    });
    expect(text).toContain('pid_file: "/d/nats-server.pid"\nclient_advertise: "[::1]:4222"\ntls {');
    expect(text).toContain(
      [
        "cluster {",
        '  name: "enjin"',
        '  listen: "[::1]:6222"',
        '  advertise: "[::1]:6222"',
        '  routes: ["nats-route://[::1]:6223"]',
        "  tls {",
        '    cert_file: "/d/nats-cert.pem"',
        '    key_file: "/d/nats-key.pem"',
        '    ca_file: "/d/ca.pem"',
        "  }",
        "}",
      ].join("\n"),
    );
  });

  it("quotes strings so a path cannot break out of its value", () => {
    const text = renderNatsConfig({ ...base, certPath: '/d/x"\n}\nauthorization {}' });
    expect(text).toContain('cert_file: "/d/x\\"\\n}\\nauthorization {}"');
    expect(hostPort("::1", 1)).toBe("[::1]:1");
    expect(hostPort("10.0.0.1", 2)).toBe("10.0.0.1:2");
  });
});
