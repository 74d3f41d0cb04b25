/**
 * The system user (and its group) a `unix-user` child runs as: its name, found in /etc/passwd and
 * /etc/group, created with useradd and removed with userdel. An account we made carries a mark in its
 * GECOS field; one that exists without the mark belongs to someone else and is never used or removed.
 * Also: killing every process of a uid at once, and taking back the files a removed uid left.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { lchown, readdir, readFile } from "node:fs/promises";
import { ChildStartError, NameTakenError } from "./errors.ts";

/** Longest user name useradd and utmp accept. */
export const USER_NAME_MAX = 32;
/** Where accounts are read from. */
export const PASSWD_PATH = "/etc/passwd";
export const GROUP_PATH = "/etc/group";
/** Shell of every child user: no interactive login. */
export const NOLOGIN_SHELL = "/usr/sbin/nologin";

/** One line of /etc/passwd. */
export interface PasswdEntry {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly gecos: string;
  readonly home: string;
  readonly shell: string;
}

/** One line of /etc/group. */
export interface GroupEntry {
  readonly name: string;
  readonly gid: number;
  readonly members: readonly string[];
}

/** An account of ours as the driver uses it. */
export interface ChildAccount {
  readonly user: string;
  readonly uid: number;
  readonly gid: number;
  /** True when this call created it (first start), false when it existed already (restart). */
  readonly created: boolean;
}

/** The programs account handling runs (absolute paths, resolved by the driver). */
export interface AccountTools {
  readonly useradd: string;
  readonly usermod: string;
  readonly userdel: string;
  readonly groupdel: string;
  readonly setpriv: string;
  readonly sh: string;
  readonly chown: string;
  readonly find: string;
}

/**
 * The user name for child `name`: `prefix + name`, or when that is longer than USER_NAME_MAX, the
 * prefix, as much of the name as fits and a 6-hex-digit hash of the whole name (so two long names
 * sharing a beginning still differ).
 */
export function deriveUserName(prefix: string, name: string): string {
  const whole = prefix + name;
  if (whole.length <= USER_NAME_MAX) return whole;
  const hash = createHash("sha256").update(name).digest("hex").slice(0, 6);
  const room = USER_NAME_MAX - prefix.length - hash.length - 1;
  return `${prefix}${name.slice(0, room).replace(/-+$/, "")}-${hash}`;
}

/** The GECOS mark of an account enjin made for child `specName`. */
export function ownMark(specName: string): string {
  return `enjin child ${specName}`;
}

/** Parse /etc/passwd text (lines that are not seven fields are skipped). */
export function parsePasswd(text: string): PasswdEntry[] {
  return text.split("\n").flatMap((line) => {
    const f = line.split(":");
    if (f.length !== 7) return [];
    return [{ name: f[0]!, uid: Number(f[2]), gid: Number(f[3]), gecos: f[4]!, home: f[5]!, shell: f[6]! }];
  });
}

/** Parse /etc/group text. */
export function parseGroup(text: string): GroupEntry[] {
  return text.split("\n").flatMap((line) => {
    const f = line.split(":");
    if (f.length !== 4) return [];
    return [{ name: f[0]!, gid: Number(f[2]), members: f[3] === "" ? [] : f[3]!.split(",") }];
  });
}

/** The user and the group named `userName`, as the account files say now. */
export async function findAccount(
  userName: string,
): Promise<{ user: PasswdEntry | undefined; group: GroupEntry | undefined }> {
  const [passwd, group] = await Promise.all([readFile(PASSWD_PATH, "utf8"), readFile(GROUP_PATH, "utf8")]);
  return {
    user: parsePasswd(passwd).find((e) => e.name === userName),
    group: parseGroup(group).find((e) => e.name === userName),
  };
}

/**
 * Throw NameTakenError unless the account `userName` is free or is the one enjin made for `specName`
 * (pure: `found` is what findAccount returned).
 */
export function checkAccountOurs(
  userName: string,
  specName: string,
  found: { user: PasswdEntry | undefined; group: GroupEntry | undefined },
): void {
  const { user, group } = found;
  if (user && user.gecos !== ownMark(specName)) {
    throw new NameTakenError(
      `system user "${userName}" already exists and was not made by enjin for child "${specName}" ` +
        `(its GECOS is "${user.gecos}"); rename the child or change the driver's userPrefix`,
    );
  }
  if (group && (!user || group.gid !== user.gid)) {
    throw new NameTakenError(
      `system group "${userName}" already exists and is not the group of enjin's user for child ` +
        `"${specName}"; rename the child or change the driver's userPrefix`,
    );
  }
}

/** The uid of the account enjin made for child `specName`, or null when there is none (or not ours). */
export async function ownChildUid(userName: string, specName: string): Promise<number | null> {
  const { user } = await findAccount(userName);
  return user !== undefined && user.gecos === ownMark(specName) && user.uid !== 0 ? user.uid : null;
}

interface RunResult {
  readonly code: number;
  readonly stderr: string;
}

/** Run a program to its end; never rejects for a non-zero exit (the caller reads `code`). */
export function run(file: string, args: readonly string[], timeoutMs = 30_000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      { timeout: timeoutMs, env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" } },
      (err, _o, e) => {
        if (err && typeof err.code !== "number") return reject(err);
        resolve({ code: typeof err?.code === "number" ? err.code : 0, stderr: String(e).trim() });
      },
    );
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Exit codes of useradd/userdel/groupdel meaning "could not lock or update the account files": retry. */
const LOCKED_CODES = new Set([1, 10]);
const LOCK_ATTEMPTS = 20;

/** Run an account tool, retrying while another process holds the account files' lock. */
async function runLocked(file: string, args: readonly string[]): Promise<RunResult> {
  let result = await run(file, args);
  for (let attempt = 1; attempt < LOCK_ATTEMPTS && LOCKED_CODES.has(result.code); attempt++) {
    await sleep(20 + Math.floor(Math.random() * 30 * attempt));
    result = await run(file, args);
  }
  return result;
}

/**
 * The account for child `specName`: reused when it is ours (its home set to `homeDir` if it moved),
 * created otherwise (system user, own group, no login shell, `homeDir` as home, not created here).
 * Throws NameTakenError if the name belongs to someone else.
 */
export async function ensureUser(
  userName: string,
  specName: string,
  homeDir: string,
  tools: AccountTools,
): Promise<ChildAccount> {
  const before = await findAccount(userName);
  checkAccountOurs(userName, specName, before);
  if (before.user) {
    if (before.user.home !== homeDir) {
      const moved = await runLocked(tools.usermod, ["-d", homeDir, userName]);
      if (moved.code !== 0)
        throw new ChildStartError(`usermod -d ${homeDir} ${userName} failed: ${moved.stderr}`);
    }
    return { user: userName, uid: before.user.uid, gid: before.user.gid, created: false };
  }
  const args = [
    "--system",
    "--user-group",
    "--no-create-home",
    "--no-log-init",
    "--home-dir",
    homeDir,
    "--shell",
    NOLOGIN_SHELL,
    "--comment",
    ownMark(specName),
    userName,
  ];
  const added = await runLocked(tools.useradd, args);
  const after = await findAccount(userName);
  if (added.code !== 0) {
    // 9: the name was taken between our check and useradd (someone else, or a racing start of ours).
    checkAccountOurs(userName, specName, after);
    if (!after.user)
      throw new ChildStartError(`useradd ${userName} failed (exit ${added.code}): ${added.stderr}`);
  }
  if (!after.user)
    throw new ChildStartError(`useradd ${userName} succeeded but the user is not in ${PASSWD_PATH}`);
  return { user: userName, uid: after.user.uid, gid: after.user.gid, created: added.code === 0 };
}

/**
 * Remove the account enjin made for `specName` and its group. Absent already: nothing to do. Not
 * ours: NameTakenError, and nothing is removed. The caller kills the user's processes first.
 */
export async function removeUser(userName: string, specName: string, tools: AccountTools): Promise<void> {
  const found = await findAccount(userName);
  checkAccountOurs(userName, specName, found);
  if (found.user) {
    const del = await runLocked(tools.userdel, [userName]);
    if (del.code !== 0 && del.code !== 6) {
      throw new ChildStartError(`userdel ${userName} failed (exit ${del.code}): ${del.stderr}`);
    }
  }
  const left = (await findAccount(userName)).group;
  if (left && (!found.user || left.gid === found.user.gid)) {
    const del = await runLocked(tools.groupdel, [userName]);
    if (del.code !== 0 && del.code !== 6) {
      throw new ChildStartError(`groupdel ${userName} failed (exit ${del.code}): ${del.stderr}`);
    }
  }
}

/**
 * SIGKILL every process whose uid is `uid`, at once: a shell running as that uid calls kill(-1),
 * which the kernel delivers under the task-list lock, so a forking child cannot slip a new process
 * past it. Never call it for a uid that is not a child's own.
 */
export async function killUidProcesses(uid: number, gid: number, tools: AccountTools): Promise<void> {
  if (uid === 0) throw new Error("killUidProcesses refuses uid 0");
  await run(tools.setpriv, [
    `--reuid=${uid}`,
    `--regid=${gid}`,
    "--clear-groups",
    "--",
    tools.sh,
    "-c",
    "kill -KILL -1",
  ]);
}

/**
 * Give `dir` and everything below it to `uid`:`gid`, never following symlinks and never leaving the
 * filesystem. Handing a tree to a child's uid skips regular files with more than one link: a hard
 * link planted there to a file elsewhere must not become the child's. Giving back to root takes all.
 */
export async function chownTree(dir: string, uid: number, gid: number, tools: AccountTools): Promise<void> {
  if ((await readdir(dir)).length === 0) return lchown(dir, uid, gid); // the usual first start: no find(1)
  const which = uid === 0 ? [] : ["(", "-type", "d", "-o", "-links", "1", ")"];
  const res = await run(tools.find, [
    dir,
    "-xdev",
    ...which,
    "-exec",
    tools.chown,
    "-h",
    `${uid}:${gid}`,
    "--",
    "{}",
    "+",
  ]);
  if (res.code !== 0) throw new ChildStartError(`giving ${dir} to ${uid}:${gid} failed: ${res.stderr}`);
}

/**
 * Delete what `uid` left in the machine's shared scratch directories, so a later user given the same
 * uid does not inherit it. Best effort: directories holding other users' files stay.
 */
export async function deleteFilesOfUid(
  uid: number,
  scratchDirs: readonly string[],
  tools: AccountTools,
): Promise<void> {
  if (uid === 0) throw new Error("deleteFilesOfUid refuses uid 0");
  for (const dir of scratchDirs) {
    await run(tools.find, [dir, "-xdev", "-depth", "-mindepth", "1", "-uid", String(uid), "-delete"]);
  }
}
