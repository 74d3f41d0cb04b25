import { nkeys } from "nats";
import { describe, expect, it } from "vitest";
import { generateIdentity } from "../../protocol/index.ts";
import { InvalidNkeyInputError, userNkey, userNkeySeed } from "./nkey.ts";

describe("nkey encoding of an ed25519 identity", () => {
  it("derives the same user nkey from the public key as nkeys.js derives from the seed", () => {
    const id = generateIdentity(new Uint8Array(32).fill(7));
    const seed = userNkeySeed(id.secretKey);
    const kp = nkeys.fromSeed(seed);
    expect(kp.getPublicKey()).toBe(userNkey(id.publicKey));
    expect(userNkey(id.publicKey)).toMatch(/^U[A-Z2-7]{55}$/);
    expect(new TextDecoder().decode(seed)).toMatch(/^SU[A-Z2-7]{56}$/);
    // The library decodes (and CRC-checks) what we encoded back to the raw key.
    expect(nkeys.fromPublic(userNkey(id.publicKey)).getPublicKey()).toBe(userNkey(id.publicKey));
    expect(Array.from(kp.getRawSeed())).toEqual(Array.from(id.secretKey.subarray(0, 32)));
  });

  it("signs a nonce that verifies under the node's own ed25519 public key", () => {
    const id = generateIdentity();
    const nonce = new TextEncoder().encode("server-nonce");
    const sig = nkeys.fromSeed(userNkeySeed(id.secretKey)).sign(nonce);
    expect(nkeys.fromPublic(userNkey(id.publicKey)).verify(nonce, sig)).toBe(true);
  });

  it("refuses keys of the wrong length", () => {
    expect(() => userNkey(new Uint8Array(31))).toThrow(InvalidNkeyInputError);
    expect(() => userNkeySeed(new Uint8Array(32))).toThrow(InvalidNkeyInputError);
  });
});
