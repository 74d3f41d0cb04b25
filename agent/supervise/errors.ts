/**
 * Errors raised by supervision. One class per condition; `name` equals the class name and `reason` is
 * a stable kebab-case label. A bad spec is refused with one of these before anything is changed.
 */
import { EnjinError } from "../../protocol/index.ts";

/** Base of every supervision error. */
export class SuperviseError extends EnjinError {
  override readonly reason: string = "supervise-error";
}
/** The spec names a strategy no driver is registered for. */
export class UnknownStrategyError extends SuperviseError {
  override readonly reason = "unknown-strategy";
}
/** A spec field is missing, malformed or out of range (the message says which). */
export class InvalidSpecError extends SuperviseError {
  override readonly reason = "invalid-spec";
}
/** The program to run (or a tool the driver needs: bwrap, qemu) is not installed. */
export class MissingBinaryError extends SuperviseError {
  override readonly reason = "missing-binary";
}
/** Every port of the node's range is allocated. */
export class PortRangeExhaustedError extends SuperviseError {
  override readonly reason = "port-range-exhausted";
}
/** The child's name, user or directory already belongs to something else. */
export class NameTakenError extends SuperviseError {
  override readonly reason = "name-taken";
}
/** A limit was asked for that this machine cannot enforce (the message names the limit and why). */
export class UnenforceableLimitError extends SuperviseError {
  override readonly reason = "unenforceable-limit";
}
/** The driver could not start the child (the cause says why). */
export class ChildStartError extends SuperviseError {
  override readonly reason = "child-start-failed";
}
/** No child of that name is supervised on this node. */
export class UnknownChildError extends SuperviseError {
  override readonly reason = "unknown-child";
}
/** The supervisor's own configuration (port range, directories, intervals) is unusable. */
export class SupervisorConfigError extends SuperviseError {
  override readonly reason = "supervisor-config";
}
/** The supervisor was closed; open a new one on the store to go on. */
export class SupervisorClosedError extends SuperviseError {
  override readonly reason = "supervisor-closed";
}
/** A saved handle's state is not one this driver can read (wrong driver, unknown version, bad fields). */
export class HandleStateError extends SuperviseError {
  override readonly reason = "handle-state";
}
/** The operation needs the child stopped (cleanup), but it is still running. */
export class ChildRunningError extends SuperviseError {
  override readonly reason = "child-running";
}
/** A VM's guest did not say it was ready or healthy over its control channel in time, or said it failed. */
export class GuestChannelError extends SuperviseError {
  override readonly reason = "guest-channel";
}
/** qemu's QMP monitor could not be reached, did not answer in time, or refused a command (the message says which). */
export class QmpError extends SuperviseError {
  override readonly reason = "qmp";
}
/** Processes an interrupted start left behind were still there after the sweep's time (the message names them). */
export class LeftoverProcessError extends SuperviseError {
  override readonly reason = "leftover-process";
}
