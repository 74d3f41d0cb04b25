/**
 * Closing the window between a driver's `start` and the save of its handle. A start is saved as
 * under way (`launching` in the child's record, with a fresh run mark the driver puts on the processes
 * it starts) before the driver starts it, and that is cleared in the write that saves its handle. A
 * record still saying so was left by an agent killed in between: the next agent, before anything
 * else, has the driver sweep (LaunchSweeper) what that start left running, then goes on as for a
 * child with no run, so the restart policy starts it again. The leftover is killed rather than
 * adopted: without its handle nothing says how far its start got, and a half-started child (a shim
 * still waiting, a VM whose monitor never answered) is not one to keep.
 */
import { randomUUID } from "node:crypto";
import type { ChildRecord, LaunchMark, SupervisorEvent } from "./child-record.ts";
import { type Driver, isLaunchSweeper } from "./driver.ts";

/** The mark of a start about to begin at `atMs`: a run id no other run shares. */
export function newLaunchMark(atMs: number): LaunchMark {
  return { atMs, runId: randomUUID() };
}

/**
 * Have `driver` end what the interrupted start `mark` of `record`'s child left, and say what was
 * done as an event: "swept" with how many processes it ended, or an "error" when the driver has no
 * LaunchSweeper ability (a leftover may then run beside the next start). Throws the driver's error
 * when the sweep itself failed.
 */
export async function sweepInterruptedStart(
  driver: Driver,
  record: ChildRecord,
  mark: LaunchMark,
  nowMs: () => number,
): Promise<SupervisorEvent> {
  const { spec, dir, strategy } = record;
  const { runId } = mark;
  if (!isLaunchSweeper(driver)) {
    const error = `its start (run ${runId}) was interrupted, and the ${strategy} driver cannot find what it left`;
    return { kind: "error", name: spec.name, error, atMs: nowMs() };
  }
  const ended = await driver.sweep({ spec, dir, runId });
  return { kind: "swept", name: spec.name, runId, ended, atMs: nowMs() };
}
