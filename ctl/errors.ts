/**
 * Errors of the command-line framework. Each carries the exit code it ends the process with;
 * `name` equals the class name.
 */
import type { ExitCode } from "./exit-codes.ts";

/** Base of errors a command throws to end with a chosen exit code and message. */
export class CliError extends Error {
  /** The process exit code this error ends with. */
  readonly exitCode: ExitCode;
  constructor(message: string, exitCode: ExitCode, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.exitCode = exitCode;
  }
}

/** The command line is wrong; the message says what was wrong and what to do. Exit 2. */
export class UsageError extends CliError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 2, options);
  }
}
