/**
 * Drivers the supervisor puts in front of the real ones: a stand-in for a strategy whose driver is
 * no longer registered (every use says so, so a saved child of that strategy shows as failed instead
 * of breaking the load), and a delegate that remembers why a start failed, so that `create` can hand
 * the driver's own named error (MissingBinaryError, InvalidSpecError ...) back to its caller when the
 * first start of a new child fails, and undo the creation.
 */
import {
  type ChildHandle,
  type Driver,
  isLaunchSweeper,
  type LaunchSweeper,
  type StartRequest,
  type SweepRequest,
} from "./driver.ts";
import { UnknownStrategyError } from "./errors.ts";

/** A driver for a strategy that is not registered any more: every use says so. */
export function missingDriver(strategy: string, known: readonly string[]): Driver {
  const refuse = async (): Promise<never> => {
    throw new UnknownStrategyError(
      `no driver is registered for strategy "${strategy}" (known: ${known.join(", ")}); add it to the agent's drivers`,
    );
  };
  return {
    name: strategy,
    validate: refuse,
    start: refuse,
    wait: refuse,
    stop: refuse,
    recover: refuse,
    cleanup: refuse,
  };
}

/**
 * `driver`, delegated method by method (drivers keep private fields, so no prototype tricks), with
 * every start error passed to `onStartError` with the child's name before it is rethrown. The
 * LaunchSweeper ability is passed on when the driver has it.
 */
export function startErrorRecorder(
  driver: Driver,
  onStartError: (name: string, error: unknown) => void,
): Driver & Partial<LaunchSweeper> {
  return {
    name: driver.name,
    validate: (spec) => driver.validate(spec),
    start: async (request: StartRequest) => {
      try {
        return await driver.start(request);
      } catch (err) {
        onStartError(request.spec.name, err);
        throw err;
      }
    },
    wait: (handle: ChildHandle) => driver.wait(handle),
    stop: (handle, timeoutMs, signal) => driver.stop(handle, timeoutMs, signal),
    recover: (handle) => driver.recover(handle),
    cleanup: (handle) => driver.cleanup(handle),
    ...(isLaunchSweeper(driver) ? { sweep: (request: SweepRequest) => driver.sweep(request) } : {}),
  };
}
