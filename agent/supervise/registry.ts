/**
 * Which driver runs each strategy name of the config. One map, built per supervisor (no module-level
 * registry, so several agents can live in one process). It starts with `proc`; the other strategies
 * (`unix-user`, `jail`, `vm`) are added here as their drivers land.
 */
import type { Driver, DriverFactory } from "./driver.ts";
import { PROC_DRIVER_NAME, type ProcOptions, proc } from "./proc.ts";

/** Strategy names to driver factories. */
export type DriverRegistry = ReadonlyMap<string, DriverFactory>;

/** Options for the built-in strategies, one field per strategy. */
export interface BuiltinDriverOptions {
  readonly proc?: ProcOptions;
}

/** The built-in strategies: today `proc`. */
export function driverRegistry(options: BuiltinDriverOptions = {}): Map<string, DriverFactory> {
  return new Map<string, DriverFactory>([[PROC_DRIVER_NAME, proc(options.proc)]]);
}

/** Optional ability: a driver holding something (timers, connections) to release when the agent stops. */
export interface ClosableDriver {
  /** Release what the driver holds; running children are left running. */
  close(): Promise<void>;
}

/** True when `driver` has the ClosableDriver ability. */
export function isClosableDriver(driver: Driver): driver is Driver & ClosableDriver {
  return typeof (driver as Partial<ClosableDriver>).close === "function";
}
