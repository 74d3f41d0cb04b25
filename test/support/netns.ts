/**
 * Network namespaces for integration tests: a private bridge in a namespace of its own, and one
 * namespace per node linked to it by a veth pair, each node with one address on a /24 that exists
 * only inside these namespaces (no route to anything else, nothing added to the root namespace).
 * Every byte between two nodes crosses a veth and the bridge; no node reaches another through
 * loopback.
 *
 * Names carry a caller's prefix and a random suffix, so concurrent runs do not collide.
 * `remove()` SIGKILLs whatever still runs in the namespaces and deletes them (which takes the veths
 * and the bridge along), and checks that none is left. Needs root and `ip` (iproute2): when a
 * namespace cannot be made, `makeNetwork` throws with the command's stderr; it never skips.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";

/** What a finished command gave. */
export interface Ran {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Default limit on one command's run time. */
export const SH_TIMEOUT_MS = 120_000;

/** Run `file args` to completion, with ENJIN_* variables removed from the environment. */
export function sh(
  file: string,
  args: readonly string[],
  opts: { cwd?: string; timeoutMs?: number } = {},
): Promise<Ran> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("ENJIN_")));
  return new Promise((resolve) => {
    execFile(
      file,
      [...args],
      { cwd: opts.cwd, env, timeout: opts.timeoutMs ?? SH_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === "number" ? err.code : -1;
        resolve({ code, stdout, stderr: stderr || (err?.message ?? "") });
      },
    );
  });
}

/** `ip ARGS`, throwing with the command and its stderr when it fails. */
export async function ip(...args: string[]): Promise<string> {
  const r = await sh("ip", args, { timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`ip ${args.join(" ")} failed (exit ${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

/** A made network (see the file comment). */
export interface NetnsNetwork {
  /** The nodes, in the order given. */
  readonly nodes: readonly string[];
  /** The /24 as its first three octets, e.g. "10.232.17". */
  readonly subnet: string;
  /** The namespace of `node`. */
  ns(node: string): string;
  /** The address of `node` (no prefix length). */
  addr(node: string): string;
  /**
   * The command that runs a program inside `node`'s namespace, `ip netns exec NS` (which execs it
   * in place): RingdProcesses' `prefix`, for a ringd in the namespace.
   */
  prefix(node: string): string[];
  /** Run `file args` to completion inside `node`'s namespace. */
  exec(node: string, file: string, args: readonly string[], opts?: { cwd?: string }): Promise<Ran>;
  /** SIGKILL every process in `node`'s namespace (a machine that dies) and wait until none is left. */
  killAll(node: string): Promise<void>;
  /** Kill everything, delete every namespace (veths and bridge with them); throws if any is left. */
  remove(): Promise<void>;
}

/** The namespaces whose name starts with `prefix`. */
async function namespacesWith(prefix: string): Promise<string[]> {
  const listed = await ip("netns", "list");
  return listed
    .split("\n")
    .map((line) => line.split(" ")[0]!)
    .filter((name) => name.startsWith(prefix));
}

async function killEverythingIn(namespaces: readonly string[]): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) {
    let left = 0;
    for (const name of namespaces) {
      const r = await sh("ip", ["netns", "pids", name], { timeoutMs: 10_000 });
      for (const pid of r.stdout.split(/\s+/).filter(Boolean).map(Number)) {
        left++;
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // gone already
        }
      }
    }
    if (left === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`processes still run in ${namespaces.join(", ")}`);
}

/**
 * Make the bridge and one namespace per node. `prefix` (at most 6 characters, e.g. "enjc") starts
 * every name; `subnetOctet` picks 10.<octet>.<random>.0/24. On failure, what was made is removed.
 */
export async function makeNetwork(opts: {
  readonly prefix: string;
  readonly nodes: readonly string[];
  readonly subnetOctet: number;
}): Promise<NetnsNetwork> {
  if (opts.prefix.length > 6 || opts.nodes.length > 200) throw new Error("prefix too long or too many nodes");
  const rand = randomBytes(3).toString("hex");
  const base = `${opts.prefix}-${rand}-`;
  const bridgeNs = `${base}br`;
  const bridge = `${opts.prefix}br${rand}`.slice(0, 15);
  const subnet = `10.${opts.subnetOctet}.${randomBytes(1)[0]}`;
  const ns = (node: string): string => {
    if (!opts.nodes.includes(node)) throw new Error(`no node ${node} in this network`);
    return `${base}${node}`;
  };
  const addr = (node: string): string => `${subnet}.${opts.nodes.indexOf(node) + 1}`;
  const outer = (node: string): string => `${opts.prefix}${rand}v${opts.nodes.indexOf(node)}`.slice(0, 15);
  const all = [...opts.nodes.map(ns), bridgeNs];

  const remove = async (): Promise<void> => {
    await killEverythingIn(await namespacesWith(base));
    const existing = await namespacesWith(base);
    if (existing.includes(bridgeNs)) {
      for (const node of opts.nodes)
        await ip("-n", bridgeNs, "link", "del", "dev", outer(node)).catch(() => {});
      await ip("-n", bridgeNs, "link", "del", "dev", bridge).catch(() => {});
    }
    const errors: string[] = [];
    for (const name of existing) await ip("netns", "del", name).catch((err) => errors.push(String(err)));
    const left = await namespacesWith(base);
    if (errors.length > 0 || left.length > 0)
      throw new Error(`could not remove namespaces ${left.join(", ")}: ${errors.join("; ")}`);
  };

  try {
    for (const name of all) await ip("netns", "add", name);
    await ip("-n", bridgeNs, "link", "add", "name", bridge, "type", "bridge");
    await ip("-n", bridgeNs, "link", "set", "dev", bridge, "up");
    for (const node of opts.nodes) {
      await ip(
        "-n",
        bridgeNs,
        "link",
        "add",
        "name",
        outer(node),
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        ns(node),
      );
      await ip("-n", bridgeNs, "link", "set", "dev", outer(node), "master", bridge);
      await ip("-n", bridgeNs, "link", "set", "dev", outer(node), "up");
      await ip("-n", ns(node), "addr", "add", `${addr(node)}/24`, "dev", "eth0");
      await ip("-n", ns(node), "link", "set", "dev", "eth0", "up");
      await ip("-n", ns(node), "link", "set", "dev", "lo", "up");
    }
  } catch (err) {
    await remove().catch(() => {});
    throw err;
  }

  return {
    nodes: [...opts.nodes],
    subnet,
    ns,
    addr,
    prefix: (node) => ["ip", "netns", "exec", ns(node)],
    exec: (node, file, args, o = {}) => sh("ip", ["netns", "exec", ns(node), file, ...args], o),
    killAll: (node) => killEverythingIn([ns(node)]),
    remove,
  };
}
