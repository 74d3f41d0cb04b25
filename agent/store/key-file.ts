/**
 * The node's private key, in its own file `node.key` beside the database, mode 0600 from the moment
 * it exists (opened with O_CREAT|O_EXCL and mode 0600, never chmod-ed after). It is written to a
 * temporary name, synced, then linked into place, so a crash leaves either no key file or a whole
 * one, and two processes racing to create it end up with the same key. A key file readable by
 * group or others is refused with the `chmod 600` fix in the message.
 *
 * Format (one line): `enjin-node-key-v1 ed25519-seed <base64url of the 32-byte seed>\n`.
 */
import { randomBytes } from "node:crypto";
import { constants, type FileHandle, link, mkdir, open, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { generateIdentity, type Identity, SEED_BYTES } from "../../protocol/index.ts";
import { KeyFileCorruptError, KeyFilePermissionsError, StoreError } from "./errors.ts";

/** The key file's name inside the node's state directory. */
export const NODE_KEY_FILE = "node.key";
/** Largest key file read (bytes); the real one is about 70. */
export const MAX_KEY_FILE_BYTES = 256;
/** Mode of the key file and of the state directory's key-bearing files. */
export const KEY_FILE_MODE = 0o600;
/** Mode of a state directory openStore or loadOrCreateIdentity creates. */
export const STATE_DIR_MODE = 0o700;

const HEADER = "enjin-node-key-v1 ed25519-seed ";
const LINE = /^enjin-node-key-v1 ed25519-seed ([A-Za-z0-9_-]{43})\n$/;

function encodeKeyFile(seed: Uint8Array): string {
  return HEADER + Buffer.from(seed).toString("base64url") + "\n";
}

/** Read and check an open key file: a regular file, mode without group/other bits, one valid line. */
async function readOpenKeyFile(handle: FileHandle, path: string): Promise<Identity> {
  const stat = await handle.stat();
  if (!stat.isFile()) throw new KeyFileCorruptError(`${path} is not a regular file`);
  if ((stat.mode & 0o077) !== 0) {
    const mode = (stat.mode & 0o777).toString(8).padStart(4, "0");
    throw new KeyFilePermissionsError(
      `${path} holds the node's private key but is readable or writable by group or others (mode ${mode}); ` +
        `fix it with: chmod 600 ${path}`,
    );
  }
  if (stat.size > MAX_KEY_FILE_BYTES)
    throw new KeyFileCorruptError(
      `${path} is ${stat.size} bytes, at most ${MAX_KEY_FILE_BYTES}: not a node key`,
    );
  const buf = Buffer.alloc(MAX_KEY_FILE_BYTES + 1);
  const { bytesRead } = await handle.read(buf, 0, buf.length, 0);
  const text = buf.subarray(0, bytesRead).toString("latin1");
  const match = LINE.exec(text);
  const seed = match ? new Uint8Array(Buffer.from(match[1]!, "base64url")) : undefined;
  if (
    seed === undefined ||
    seed.length !== SEED_BYTES ||
    Buffer.from(seed).toString("base64url") !== match?.[1]
  )
    throw new KeyFileCorruptError(
      `${path} is not an enjin node key (expected one line "${HEADER.trim()} <base64url seed>"); ` +
        "restore it from a backup, or move it away to make a new identity (the node must then rejoin)",
    );
  const identity = generateIdentity(seed);
  seed.fill(0);
  buf.fill(0);
  return identity;
}

/** Open `path` without following a symlink; undefined when it does not exist. */
async function openExisting(path: string): Promise<FileHandle | undefined> {
  try {
    return await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return undefined;
    if (code === "ELOOP") throw new KeyFileCorruptError(`${path} is a symbolic link; refusing to follow it`);
    throw new StoreError(`cannot open ${path}`, { cause: err });
  }
}

/** Read the key file at `path`; KeyFilePermissionsError / KeyFileCorruptError when unusable. */
export async function readKeyFile(path: string): Promise<Identity | undefined> {
  const handle = await openExisting(path);
  if (handle === undefined) return undefined;
  try {
    return await readOpenKeyFile(handle, path);
  } finally {
    await handle.close();
  }
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, constants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * The node's identity from `dir/node.key`, creating the directory (0700) and a fresh key (0600)
 * when there is none. Never widens or narrows an existing file's mode: a loose one is refused.
 */
export async function loadOrCreateIdentity(dir: string): Promise<Identity> {
  await mkdir(dir, { recursive: true, mode: STATE_DIR_MODE });
  return loadOrCreateKeyFile(join(dir, NODE_KEY_FILE));
}

/**
 * The key pair in the key file at `path` (a node's, the mesh root's, an operator's), creating a
 * fresh one (mode 0600, written whole or not at all) when there is none. The directory must exist.
 */
export async function loadOrCreateKeyFile(path: string): Promise<Identity> {
  const dir = dirname(path);
  const name = basename(path);
  const existing = await readKeyFile(path);
  if (existing !== undefined) return existing;

  const identity = generateIdentity();
  const tmp = join(dir, `.${name}.${process.pid}.${randomBytes(6).toString("hex")}`);
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
  const handle = await open(tmp, flags, KEY_FILE_MODE);
  try {
    await handle.writeFile(encodeKeyFile(identity.secretKey.subarray(0, SEED_BYTES)), "latin1");
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await link(tmp, path); // fails with EEXIST if another process got there first
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST")
      throw new StoreError(`cannot create ${path}`, { cause: err });
  } finally {
    await unlink(tmp);
  }
  await syncDir(dir);
  const stored = await readKeyFile(path);
  if (stored === undefined) throw new StoreError(`${path} vanished while it was being created`);
  return stored;
}
