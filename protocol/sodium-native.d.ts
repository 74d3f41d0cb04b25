/** The small part of sodium-native (v5) that protocol/ uses; the package ships no types. */
declare module "sodium-native" {
  interface SodiumNative {
    crypto_sign_PUBLICKEYBYTES: number;
    crypto_sign_SECRETKEYBYTES: number;
    crypto_sign_SEEDBYTES: number;
    crypto_sign_BYTES: number;
    crypto_sign_seed_keypair(pk: Uint8Array, sk: Uint8Array, seed: Uint8Array): void;
    crypto_sign_keypair(pk: Uint8Array, sk: Uint8Array): void;
    crypto_sign_detached(sig: Uint8Array, message: Uint8Array, sk: Uint8Array): void;
    crypto_sign_verify_detached(sig: Uint8Array, message: Uint8Array, pk: Uint8Array): boolean;
    crypto_hash_sha256(out: Uint8Array, input: Uint8Array): void;
    crypto_auth(out: Uint8Array, input: Uint8Array, key: Uint8Array): void;
    crypto_auth_verify(mac: Uint8Array, input: Uint8Array, key: Uint8Array): boolean;
    crypto_core_ed25519_is_valid_point(p: Uint8Array): boolean;
    randombytes_buf(buf: Uint8Array): void;
    crypto_box_SEALBYTES: number;
    crypto_box_seal(c: Uint8Array, m: Uint8Array, pk: Uint8Array): void;
    crypto_box_seal_open(m: Uint8Array, c: Uint8Array, pk: Uint8Array, sk: Uint8Array): boolean;
    crypto_secretbox_KEYBYTES: number;
    crypto_secretbox_NONCEBYTES: number;
    crypto_secretbox_MACBYTES: number;
    crypto_secretbox_easy(c: Uint8Array, m: Uint8Array, n: Uint8Array, k: Uint8Array): void;
    crypto_secretbox_open_easy(m: Uint8Array, c: Uint8Array, n: Uint8Array, k: Uint8Array): boolean;
    sodium_memcmp(a: Uint8Array, b: Uint8Array): boolean;
  }
  const sodium: SodiumNative;
  export default sodium;
}
