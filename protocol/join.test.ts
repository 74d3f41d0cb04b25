import { describe, expect, it } from "vitest";
import { joinMac, verifyJoinMac } from "./join.ts";
import { generateIdentity } from "./keys.ts";

describe("join MAC", () => {
  const secret = new Uint8Array(32).fill(9);
  const tokenId = new Uint8Array(16).fill(1);
  const joiner = generateIdentity(new Uint8Array(32).fill(3)).publicKey;
  const other = generateIdentity(new Uint8Array(32).fill(4)).publicKey;

  it("binds the secret, the token id and the joiner's key", () => {
    const mac = joinMac(secret, tokenId, joiner);
    expect(mac.length).toBe(32);
    expect(verifyJoinMac(mac, secret, tokenId, joiner)).toBe(true);
    expect(verifyJoinMac(mac, secret, tokenId, other)).toBe(false);
    expect(verifyJoinMac(mac, new Uint8Array(32).fill(8), tokenId, joiner)).toBe(false);
    expect(verifyJoinMac(mac, secret, new Uint8Array(16), joiner)).toBe(false);
    expect(verifyJoinMac(mac.subarray(1), secret, tokenId, joiner)).toBe(false);
    expect(() => joinMac(new Uint8Array(5), tokenId, joiner)).toThrow();
  });
});
