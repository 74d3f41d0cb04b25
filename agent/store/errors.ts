/**
 * Errors raised by the node's store. One class per condition; `name` equals the class name and
 * `reason` is a stable kebab-case label. Branch on the class, never on the message text.
 */
import { EnjinError } from "../../protocol/index.ts";

/** Base of every store error. */
export class StoreError extends EnjinError {
  override readonly reason: string = "store-error";
}
/** Another process (or another openStore in this one) holds the database open. */
export class StoreLockedError extends StoreError {
  override readonly reason = "store-locked";
}
/** A stored value is not what its table says it should be (bad JSON, wrong schema, too long). */
export class CorruptValueError extends StoreError {
  override readonly reason = "corrupt-value";
}
/** A value or key given to the store cannot be stored (not JSON-encodable, too long, bad key). */
export class InvalidValueError extends StoreError {
  override readonly reason = "invalid-value";
}
/** The node's key file can be read by group or others. */
export class KeyFilePermissionsError extends StoreError {
  override readonly reason = "key-file-permissions";
}
/** The node's key file is not a key file this build wrote (wrong format, size, or not a file). */
export class KeyFileCorruptError extends StoreError {
  override readonly reason = "key-file-corrupt";
}
/** The key file holds a different key from the one the database recorded for this node. */
export class IdentityMismatchError extends StoreError {
  override readonly reason = "identity-mismatch";
}
