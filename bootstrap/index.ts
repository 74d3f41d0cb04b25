/**
 * bootstrap/ — how a node gets into the mesh: one-time join tokens. The token string and its
 * bounded decoder, the joiner's proof, and the issuer that mints, lists, revokes and redeems tokens
 * over a small TokenStore (a LevelDB-backed one is here too: the agent hands it its `tokens`
 * sublevel). Imports protocol/ and rings/ only. Other folders import only this file.
 */
export * from "./errors.ts";
export * from "./joiner.ts";
export * from "./keyed-mutex.ts";
export * from "./rate-limit.ts";
export * from "./token-codec.ts";
export * from "./token-seal.ts";
export * from "./token-table.ts";
export * from "./tokens.ts";
