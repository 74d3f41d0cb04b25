import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MAX_PUBLISH_BYTES } from "../mesh-node.ts";
import {
  BadRouteAnnouncementError,
  BadRoutePeersFileError,
  certificateSha256,
  decodeRouteAnnouncement,
  encodeRouteAnnouncement,
  isRouteUrl,
  NATS_ROUTE_PEERS_FILE,
  RoutePeerBook,
} from "./nats-routes.ts";

// Two self-signed EC P-256 certificates as the launcher makes them (openssl req -x509), fixed here.
const CERT_1 = `-----BEGIN CERTIFICATE-----
MIIBpDCCAUqgAwIBAgIUWTiWuvp4C5WBBDt4h6HZLJec4T4wCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQZW5qaW4tbmF0cy10ZXN0MTAgFw0yNjExMjMyMDQ3NTZaGA8y
MTI2MTAzMDIwNDc1NlowGzEZMBcGA1UEAwwQZW5qaW4tbmF0cy10ZXN0MTBZMBMG
ByqGSM49AgEGCCqGSM49AwEHA0IABHXMN/kT+S9sHXyFUZ74UbWAXKjhiX6pvVK6
VgoKR8c+092xMwx5pFMhrst67JDGYAw9Gem95V1CbFQvTNbSkM+jajBoMB0GA1Ud
DgQWBBT5JTsnCFG8NBw0ZNXBZZIFnm0oijAfBgNVHSMEGDAWgBT5JTsnCFG8NBw0
ZNXBZZIFnm0oijAPBgNVHRMBAf8EBTADAQH/MBUGA1UdEQQOMAyHBH8AAAGHBAoA
AAEwCgYIKoZIzj0EAwIDSAAwRQIhAOaWPTz7Fi7d7cCnnp38EBko085HIhJbZ8XG
2RX3DoCnAiAbjY0MTfdQLUTa1f16bLjoPmb8xq6aS8bIFjfouy63Vw==
-----END CERTIFICATE-----
`;
const CERT_2 = `-----BEGIN CERTIFICATE-----
MIIBpTCCAUqgAwIBAgIUej1SF+Uh9fsNp3SIwCACTTBC9UkwCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQZW5qaW4tbmF0cy10ZXN0MjAgFw0yNjExMjMyMDQ3NTdaGA8y
MTI2MTAzMDIwNDc1N1owGzEZMBcGA1UEAwwQZW5qaW4tbmF0cy10ZXN0MjBZMBMG
ByqGSM49AgEGCCqGSM49AwEHA0IABN92QgFYgkHtEpYxgpNxzlHgRESTRm2P/aGx
ydbPOvdOoz/Y0q6S3gc1f0ao1Drfx0m9mSNYTaTLLtkeM8dlj3ajajBoMB0GA1Ud
DgQWBBSqmW9AS69icQju7jPuV6szyoTuGTAfBgNVHSMEGDAWgBSqmW9AS69icQju
7jPuV6szyoTuGTAPBgNVHRMBAf8EBTADAQH/MBUGA1UdEQQOMAyHBH8AAAGHBAoA
AAIwCgYIKoZIzj0EAwIDSQAwRgIhAKnOVLdB/fzOkdZVyju9u6D4QtkWZYflQEdj
hrsKNvAGAiEAqwDRWhBqH7O4uS2VH77YPch6rDHNIWUHeAl3mF0w7M0=
-----END CERTIFICATE-----
`;
const KEY_1 = "11".repeat(32);
const KEY_2 = "22".repeat(32);
const ROUTE_1 = "nats-route://10.0.0.1:7573";
const ROUTE_2 = "nats-route://10.0.0.2:7573";
const text = (s: string) => new TextEncoder().encode(s);

describe("route announcements", () => {
  it("round-trip a route URL and a certificate, within one broadcast", () => {
    const bytes = encodeRouteAnnouncement({ routeUrl: ROUTE_1, certPem: CERT_1 });
    expect(bytes.byteLength).toBeLessThanOrEqual(MAX_PUBLISH_BYTES);
    const back = decodeRouteAnnouncement(bytes);
    expect(back.routeUrl).toBe(ROUTE_1);
    expect(certificateSha256(back.certPem)).toBe(certificateSha256(CERT_1));
    expect(JSON.parse(new TextDecoder().decode(bytes))).toMatchObject({ v: 1, route: ROUTE_1 });
  });

  it("refuse everything that is not a version-1 announcement", () => {
    const good = JSON.parse(
      new TextDecoder().decode(encodeRouteAnnouncement({ routeUrl: ROUTE_1, certPem: CERT_1 })),
    );
    const bad = [
      text("not json"),
      Uint8Array.of(0xff, 0xfe),
      text(JSON.stringify({ ...good, v: 2 })),
      text(JSON.stringify({ ...good, extra: 1 })),
      text(JSON.stringify({ ...good, route: "nats://10.0.0.1:4222" })),
      text(JSON.stringify({ ...good, route: "nats-route://10.0.0.1:99999" })),
      text(JSON.stringify({ ...good, route: "nats-route://user:pw@10.0.0.1:7573" })),
      text(JSON.stringify({ ...good, cert: "not base64!" })),
      text(JSON.stringify({ ...good, cert: Buffer.from("not DER").toString("base64") })),
      text(JSON.stringify({ ...good, cert: "A".repeat(2_000) })),
      new Uint8Array(MAX_PUBLISH_BYTES + 1),
    ];
    for (const bytes of bad) expect(() => decodeRouteAnnouncement(bytes)).toThrow(BadRouteAnnouncementError);
    expect(() => encodeRouteAnnouncement({ routeUrl: "tcp://x:1", certPem: CERT_1 })).toThrow(
      BadRouteAnnouncementError,
    );
  });

  it("take only nats-route://host:port as a route URL", () => {
    expect(isRouteUrl("nats-route://[::1]:6222")).toBe(true);
    expect(isRouteUrl("nats-route://seed-2.example:6222")).toBe(true);
    for (const url of ["nats-route://x", "nats-route://x:0", "nats-route://x:1/p", "nats-route://x:1?q", "x"])
      expect(isRouteUrl(url), url).toBe(false);
  });
});

describe("the route book", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "enjin-route-book-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("starts empty, learns peers, and says when nothing changed", async () => {
    const book = await RoutePeerBook.load(dir);
    expect(book.routeSet()).toEqual({ routes: [], trustedPeerCertPems: [] });
    expect(book.learn(KEY_2, { routeUrl: ROUTE_2, certPem: CERT_2 })).toBe(true);
    expect(book.learn(KEY_2, { routeUrl: ROUTE_2, certPem: CERT_2 })).toBe(false);
    expect(book.learn(KEY_1, { routeUrl: ROUTE_1, certPem: CERT_1 })).toBe(true);
    expect(book.routeSet()).toEqual({ routes: [ROUTE_1, ROUTE_2], trustedPeerCertPems: [CERT_1, CERT_2] });
    // A peer that moved: its new URL replaces the old one.
    expect(book.learn(KEY_2, { routeUrl: "nats-route://10.0.0.9:7573", certPem: CERT_2 })).toBe(true);
    expect(book.routeSet().routes).toEqual([ROUTE_1, "nats-route://10.0.0.9:7573"]);
  });

  it("trusts the join pin too, once, until a revoked peer turns out to have presented it", async () => {
    const book = await RoutePeerBook.load(dir);
    expect(book.routeSet(CERT_1)).toEqual({ routes: [], trustedPeerCertPems: [CERT_1] });
    book.learn(KEY_1, { routeUrl: ROUTE_1, certPem: CERT_1 });
    book.learn(KEY_2, { routeUrl: ROUTE_2, certPem: CERT_2 });
    expect(book.routeSet(CERT_1).trustedPeerCertPems).toEqual([CERT_1, CERT_2]);
    expect(book.dropRevoked((key) => key === KEY_1)).toBe(true);
    expect(book.dropRevoked((key) => key === KEY_1)).toBe(false);
    expect(book.routeSet(CERT_1)).toEqual({ routes: [ROUTE_2], trustedPeerCertPems: [CERT_2] });
    // The revoked server's certificate is not taken back, whoever announces it.
    expect(book.learn(KEY_2, { routeUrl: ROUTE_1, certPem: CERT_1 })).toBe(false);
    expect(book.routeSet().routes).toEqual([ROUTE_2]);
  });

  it("survives a restart on disk (0600), and a damaged file is a named error", async () => {
    const book = await RoutePeerBook.load(dir);
    book.learn(KEY_1, { routeUrl: ROUTE_1, certPem: CERT_1 });
    book.learn(KEY_2, { routeUrl: ROUTE_2, certPem: CERT_2 });
    book.dropRevoked((key) => key === KEY_2);
    await book.save();
    const path = join(dir, NATS_ROUTE_PEERS_FILE);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const again = await RoutePeerBook.load(dir);
    expect(again.peers()).toEqual(book.peers());
    expect(again.learn(KEY_2, { routeUrl: ROUTE_2, certPem: CERT_2 })).toBe(false); // still revoked
    expect(JSON.parse(await readFile(path, "utf8")).revokedCertSha256).toEqual([certificateSha256(CERT_2)]);

    await writeFile(
      path,
      JSON.stringify({ peers: [{ key: KEY_1, routeUrl: ROUTE_1, certPem: "x" }], revokedCertSha256: [] }),
    );
    await expect(RoutePeerBook.load(dir)).rejects.toBeInstanceOf(BadRoutePeersFileError);
    await writeFile(path, "{");
    await expect(RoutePeerBook.load(dir)).rejects.toBeInstanceOf(BadRoutePeersFileError);
  });
});
