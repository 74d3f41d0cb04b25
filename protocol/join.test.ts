import sodium from "sodium-native";
import { describe, expect, it } from "vitest";
import { JOIN_DOMAIN_TAG, JOIN_KEY_DOMAIN_TAG, joinMac, joinMacKey, verifyJoinMac } from "./join.ts";
import { generateIdentity, sha256 } from "./keys.ts";

describe("join MAC", () => {
  const secret = new Uint8Array(32).fill(9);
  const tokenId = new Uint8Array(16).fill(1);
  const joiner = generateIdentity(new Uint8Array(32).fill(3)).publicKey;
  const other = generateIdentity(new Uint8Array(32).fill(4)).publicKey;
  const macKey = joinMacKey(secret);

  it("binds the secret (through its MAC key), the token id and the joiner's key", () => {
    const mac = joinMac(secret, tokenId, joiner);
    expect(mac.length).toBe(32);
    expect(verifyJoinMac(mac, macKey, tokenId, joiner)).toBe(true);
    expect(verifyJoinMac(mac, macKey, tokenId, other)).toBe(false);
    expect(verifyJoinMac(mac, joinMacKey(new Uint8Array(32).fill(8)), tokenId, joiner)).toBe(false);
    expect(verifyJoinMac(mac, macKey, new Uint8Array(16), joiner)).toBe(false);
    expect(verifyJoinMac(mac.subarray(1), macKey, tokenId, joiner)).toBe(false);
    expect(verifyJoinMac(mac, macKey.subarray(1), tokenId, joiner)).toBe(false);
    expect(() => joinMac(new Uint8Array(5), tokenId, joiner)).toThrow();
  });

  it("is keyed by sha256(key tag || secret), never by the secret itself", () => {
    const tagged = new Uint8Array([...JOIN_KEY_DOMAIN_TAG, ...secret]);
    expect(macKey).toEqual(sha256(tagged));
    // Only the holder of the secret or of its MAC key can make a proof; the bare secret as a key fails.
    const input = new Uint8Array([...JOIN_DOMAIN_TAG, ...tokenId, ...joiner]);
    const keyedBySecret = new Uint8Array(32);
    sodium.crypto_auth(keyedBySecret, input, secret);
    expect(verifyJoinMac(keyedBySecret, macKey, tokenId, joiner)).toBe(false);
  });

  it("matches a pinned vector (secret 0x09 x32, token id 0x01 x16, joiner from seed 0x03 x32)", () => {
    const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
    expect(hex(macKey)).toBe("02dc7545823e09a027db1af3eb6beb1d82441ba7b9537c7cd7e16fe95443d0e7");
    expect(hex(joinMac(secret, tokenId, joiner))).toBe(
      "385828ea9325652afbaab8109a45b4eabed9ae68389344ee0c00b850950d93f5",
    );
  });
});
