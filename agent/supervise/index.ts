/**
 * agent/supervise/ — running the node's children. A driver (strategy) runs one child: `proc` here, and
 * `unix-user`, `jail`, `vm` beside it, all behind driver.ts; registry.ts maps strategy names to them.
 * The restart policy (pure) decides when to run a child again; ports.ts hands out each child's PORT
 * from the node's range; child-log.ts captures and rotates its output; health checks (tcp, http,
 * exec) turn an unresponsive child into a restart. The Supervisor ties these together, saves every
 * child's record and driver handle in the store, and recovers running children after an agent
 * restart instead of orphaning or duplicating them. Other folders import only this file.
 */
export * from "./child-log.ts";
export * from "./child-record.ts";
export * from "./driver.ts";
export * from "./errors.ts";
export * from "./health.ts";
export * from "./health-monitor.ts";
export * from "./health-probe.ts";
export * from "./ports.ts";
export * from "./proc.ts";
export * from "./registry.ts";
export * from "./restart-policy.ts";
export * from "./spec.ts";
export * from "./supervised-child.ts";
export * from "./supervisor.ts";
