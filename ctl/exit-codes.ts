/**
 * Exit codes of ringd and ringctl, the same for every command. Scripts branch on these, so they
 * never change meaning; new ones are only added. Listed in every command's EXIT STATUS and in
 * docs/cli.md.
 */
import {
  ConfigError,
  ConfigFileError,
  ControlConnectionClosedError,
  ControlPermissionError,
  ControlTimeoutError,
  DaemonNotRunningError,
  RemoteCallError,
  SocketInUseError,
} from "../agent/daemon/index.ts";
import { BadJoinResponseError, JoinRefusedError, JoinUnreachableError } from "../agent/node/join.ts";
import { NotInitializedError } from "../agent/node/mesh-state.ts";
import { AlreadyInitializedError, InvalidLabelError } from "../agent/node/seed.ts";
import { KeyFileCorruptError, KeyFilePermissionsError, StoreLockedError } from "../agent/store/errors.ts";
import { ZeromqBindError } from "../agent/transport/zeromq-address.ts";
import { TokenFormatError, TokenIssuerMismatchError } from "../bootstrap/index.ts";
import { CliError } from "./errors.ts";

/** Every exit code, by name. */
export const ExitCode = {
  /** Everything asked for was done. */
  Ok: 0,
  /** The command ran, but at least one target failed or refused (details per target in the output). */
  TargetFailed: 1,
  /** The command line was wrong: unknown command or option, missing or bad argument. */
  Usage: 2,
  /** ringd is not running or not answering, or targets could not be reached in time. */
  Unreachable: 3,
  /** Refused: permission denied on the socket, or the mesh refused the operator's authority. */
  Refused: 4,
  /** The configuration (file or ENJIN_* environment) is invalid. */
  Config: 5,
  /** A bug: an error nobody expected. Please report it with the message. */
  Internal: 70,
  /** Interrupted by SIGINT (Ctrl-C). */
  Interrupted: 130,
} as const;

/** One of the values of ExitCode. */
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** One line per exit code, for EXIT STATUS sections. */
export const EXIT_CODE_MEANINGS: Readonly<Record<ExitCode, string>> = {
  0: "success",
  1: "the command ran, but at least one target failed or refused",
  2: "usage error: unknown command or option, missing or bad argument",
  3: "unreachable: ringd is not running or not answering, or targets timed out",
  4: "refused: permission denied, or not authorized by the mesh",
  5: "invalid configuration (file or ENJIN_* environment)",
  70: "internal error (a bug; please report it)",
  130: "interrupted (SIGINT)",
};

/** The exit code for an error a command threw: by class, never by message. */
export function exitCodeFor(err: unknown): ExitCode {
  if (err instanceof CliError) return err.exitCode;
  if (
    err instanceof DaemonNotRunningError ||
    err instanceof ControlTimeoutError ||
    err instanceof ControlConnectionClosedError
  ) {
    return ExitCode.Unreachable;
  }
  if (err instanceof ControlPermissionError || err instanceof SocketInUseError) return ExitCode.Refused;
  if (err instanceof ConfigError || err instanceof ConfigFileError) return ExitCode.Config;
  // The configured listen address cannot be bound here (in use, or not this machine's).
  if (err instanceof ZeromqBindError) return ExitCode.Config;
  if (
    err instanceof NotInitializedError ||
    err instanceof KeyFilePermissionsError ||
    err instanceof KeyFileCorruptError
  )
    return ExitCode.Config;
  if (
    err instanceof AlreadyInitializedError ||
    err instanceof InvalidLabelError ||
    err instanceof TokenFormatError
  )
    return ExitCode.Usage;
  if (err instanceof JoinUnreachableError) return ExitCode.Unreachable;
  if (
    err instanceof JoinRefusedError ||
    err instanceof BadJoinResponseError ||
    err instanceof TokenIssuerMismatchError ||
    err instanceof StoreLockedError
  )
    return ExitCode.Refused;
  if (err instanceof RemoteCallError) return REMOTE_EXIT_CODES[err.remoteName] ?? ExitCode.Internal;
  return ExitCode.Internal;
}

/** Exit codes for errors the daemon reports back over the control socket, by their class name. */
const REMOTE_EXIT_CODES: Readonly<Record<string, ExitCode>> = {
  InvalidParamsError: ExitCode.Usage,
  InvalidLabelError: ExitCode.Usage,
  ScopeNotGrantableError: ExitCode.Refused,
  NotAvailableError: ExitCode.Refused,
  RelayRefusedError: ExitCode.Refused,
  TokenScopeError: ExitCode.Usage,
};
