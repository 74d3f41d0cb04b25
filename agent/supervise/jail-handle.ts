/**
 * The jail driver's handle state: what the supervisor saves so a restarted agent can find a running
 * jail again. Versioned: a layout change gets a new version, and an agent refuses (HandleStateError)
 * a version it does not know rather than misreading it.
 */
import type { ChildHandle } from "./driver.ts";
import { HandleStateError } from "./errors.ts";

/** Layout version of JailState. 1: the first. */
export const JAIL_HANDLE_VERSION = 1;

/** What a jail handle carries in `state` (version 1). `handle.pid` is the shim's pid. */
export interface JailState {
  /** Start time of the shim (handle.pid) in clock ticks, so a recycled pid is never taken for it. */
  readonly shimStartTicks: number;
  /** /proc/sys/kernel/random/boot_id at start: start ticks name one process only within one boot. */
  readonly bootId: string;
  /** Host pid of the jail's pid 1 (bwrap's init) and its start time; ticks -1 when it was gone before start returned. */
  readonly initPid: number;
  readonly initStartTicks: number;
  /** The host uid and gid the jail runs as. */
  readonly uid: number;
  readonly gid: number;
  /** The system user the driver made for this child, or null for an operator-given uid. */
  readonly user: string | null;
  /** The child's directory (handed to the jail's user; handed back to root by cleanup). */
  readonly dir: string;
}

/** Read and check a handle's state; HandleStateError for another driver's handle, another version or bad fields. */
export function readJailState(handle: ChildHandle): JailState {
  if (handle.driver !== "jail")
    throw new HandleStateError(`handle of ${handle.name} belongs to driver ${handle.driver}, not jail`);
  if (handle.version !== JAIL_HANDLE_VERSION)
    throw new HandleStateError(
      `jail handle of ${handle.name} has version ${handle.version}; this agent reads ${JAIL_HANDLE_VERSION}`,
    );
  const s = handle.state as Partial<Record<keyof JailState, unknown>>;
  const ints = [s.shimStartTicks, s.initPid, s.initStartTicks, s.uid, s.gid];
  if (
    !Number.isSafeInteger(handle.pid) ||
    handle.pid <= 0 ||
    !ints.every(Number.isSafeInteger) ||
    typeof s.dir !== "string" ||
    typeof s.bootId !== "string" ||
    !(s.user === null || typeof s.user === "string")
  )
    throw new HandleStateError(`jail handle of ${handle.name} has malformed state`);
  return {
    shimStartTicks: s.shimStartTicks as number,
    bootId: s.bootId,
    initPid: s.initPid as number,
    initStartTicks: s.initStartTicks as number,
    uid: s.uid as number,
    gid: s.gid as number,
    user: s.user,
    dir: s.dir,
  };
}
