import { describe, expect, it } from "vitest";
import { generateIdentity, keyHex } from "../../protocol/index.ts";
import {
  formatZeromqAddress,
  InvalidListenAddressError,
  parseListen,
  parseZeromqAddress,
  portOfEndpoint,
} from "./zeromq-address.ts";

describe("zeromq addresses", () => {
  const id = generateIdentity(new Uint8Array(32).fill(1));
  const hex = keyHex(id.publicKey);

  it("round-trips tcp://HOST:PORT/<key hex>, IPv6 included", () => {
    for (const host of ["127.0.0.1", "node-1.example", "[::1]"]) {
      const address = formatZeromqAddress(host, 4242, id.publicKey);
      const parsed = parseZeromqAddress(address);
      expect(parsed?.endpoint).toBe(`tcp://${host}:4242`);
      expect(parsed?.publicKeyHex).toBe(hex);
      expect(parsed?.publicKey).toEqual(id.publicKey);
    }
  });

  it("rejects anything else without throwing", () => {
    for (const bad of [
      "",
      "mem-1",
      `tcp://127.0.0.1:0/${hex}`,
      `tcp://127.0.0.1:70000/${hex}`,
      `tcp://127.0.0.1:1/${hex.toUpperCase()}`,
      `tcp://127.0.0.1:1/${hex.slice(2)}`,
      `ipc:///tmp/x/${hex}`,
      `tcp://${"a".repeat(250)}:1/${hex}`,
    ]) {
      expect(parseZeromqAddress(bad)).toBeUndefined();
    }
  });

  it("parses listen requests, with 0 or * for a free port, and the node's own full address", () => {
    expect(parseListen("tcp://127.0.0.1:0", hex)).toEqual({ host: "127.0.0.1", port: 0 });
    expect(parseListen("tcp://0.0.0.0:*", hex)).toEqual({ host: "0.0.0.0", port: 0 });
    expect(parseListen(formatZeromqAddress("10.0.0.1", 5555, id.publicKey), hex)).toEqual({
      host: "10.0.0.1",
      port: 5555,
    });
    const other = formatZeromqAddress("10.0.0.1", 5555, generateIdentity().publicKey);
    for (const bad of [other, "udp://1.2.3.4:5", "tcp://1.2.3.4", "tcp://1.2.3.4:99999"]) {
      expect(() => parseListen(bad, hex)).toThrow(InvalidListenAddressError);
    }
  });

  it("reads the port of a bound endpoint", () => {
    expect(portOfEndpoint("tcp://127.0.0.1:40123")).toBe(40123);
    expect(portOfEndpoint(null)).toBeUndefined();
  });
});
