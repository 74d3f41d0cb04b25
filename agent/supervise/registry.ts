/**
 * Which driver runs each strategy name of the config. One map, built per supervisor (no module-level
 * registry, so several agents can live in one process): `proc`, `unix-user`, `jail` and `vm`, each
 * built from its own options. A factory only checks its options here; it touches the machine (users,
 * cgroups, bubblewrap, qemu) only when a child of its strategy is validated or started, so a node
 * that never runs a VM never probes for KVM.
 */
import type { Driver, DriverFactory } from "./driver.ts";
import { type JailOptions, jail } from "./jail.ts";
import { PROC_DRIVER_NAME, type ProcOptions, proc } from "./proc.ts";
import { type UnixUserOptions, unixUser } from "./unix-user.ts";
import { UNIX_USER_DRIVER } from "./unix-user-spec.ts";
import { type VmOptions, vm } from "./vm.ts";
import { VM_DRIVER } from "./vm-args.ts";

/** Strategy names to driver factories. */
export type DriverRegistry = ReadonlyMap<string, DriverFactory>;

/** Registry name of the jail strategy. */
export const JAIL_DRIVER_NAME = "jail";

/** The built-in strategy names, in the order `ringctl child create --help` lists them. */
export const BUILTIN_STRATEGIES: readonly string[] = [
  PROC_DRIVER_NAME,
  UNIX_USER_DRIVER,
  JAIL_DRIVER_NAME,
  VM_DRIVER,
];

/** Options for the built-in strategies, one field per strategy. */
export interface BuiltinDriverOptions {
  readonly proc?: ProcOptions;
  readonly unixUser?: UnixUserOptions;
  readonly jail?: JailOptions;
  readonly vm?: VmOptions;
}

/**
 * The built-in strategies: `proc`, `unix-user`, `jail`, `vm`. Bad options throw the factory's
 * SupervisorConfigError (or InvalidSpecError for a bad unix-user prefix) here, before any child.
 */
export function driverRegistry(options: BuiltinDriverOptions = {}): Map<string, DriverFactory> {
  return new Map<string, DriverFactory>([
    [PROC_DRIVER_NAME, proc(options.proc)],
    [UNIX_USER_DRIVER, unixUser(options.unixUser)],
    [JAIL_DRIVER_NAME, jail(options.jail)],
    [VM_DRIVER, vm(options.vm)],
  ]);
}

/** Optional ability: a driver holding something (timers, connections) to release when the agent stops. */
export interface ClosableDriver {
  /** Release what the driver holds; running children are left running. */
  close(): Promise<void> | void;
}

/** True when `driver` has the ClosableDriver ability. */
export function isClosableDriver(driver: Driver): driver is Driver & ClosableDriver {
  return typeof (driver as Partial<ClosableDriver>).close === "function";
}
