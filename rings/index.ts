/**
 * rings/ — the logic of a ring, as state machines that do no I/O and read no clock: the trust store
 * (who is certified, who is revoked), the ingest pipeline (dedup → authorize → verify) with the
 * per-action command rule (who may send which command), epidemic gossip with anti-entropy, SWIM
 * membership with Lifeguard, and the periodic sync of death and leave notices. The daemon in agent/ wires them to sockets and timers; tests drive them
 * with a fake clock and a seeded RNG. Other folders import only this file.
 */
export * from "./command-rights.ts";
export * from "./counters.ts";
export * from "./gossip.ts";
export * from "./ingest.ts";
export * from "./ingest-batch.ts";
export * from "./membership.ts";
export * from "./membership-config.ts";
export { MAX_PENDING_HEARSAY } from "./membership-hearsay.ts";
export * from "./membership-sync.ts";
export * from "./membership-types.ts";
export * from "./rng.ts";
export * from "./seen-set.ts";
export { suspicionMinTimeoutMs } from "./suspicion.ts";
export * from "./trust.ts";
