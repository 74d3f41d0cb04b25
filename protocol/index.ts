/**
 * protocol/ — the bytes of enjin, defined once: size limits, the bounded codec, ed25519 identities
 * with strict verification, the signed envelope and its message id, the link frame, payload codecs
 * with schema validation, certificates, chains and revocations. Pure: no I/O, no clock reads (times
 * are parameters). Other folders import only this file. Byte layouts: docs/PROTOCOL.md.
 */

export * from "./certificate.ts";
export * from "./codec.ts";
export * from "./envelope.ts";
export * from "./errors.ts";
export * from "./frame.ts";
export * from "./join.ts";
export * from "./keys.ts";
export * from "./limits.ts";
export * from "./messages.ts";
export * from "./revocation.ts";
export * from "./schema.ts";
export * from "./sodium.ts";
export * from "./types.ts";
