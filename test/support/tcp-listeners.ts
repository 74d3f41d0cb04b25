/**
 * How many sockets listen on a TCP port, as /proc/net/tcp says (IPv4, this network namespace): for
 * tests that check a child's port is served by exactly one process.
 */
import { readFileSync } from "node:fs";

/** Listening IPv4 TCP sockets on `port`, on any local address. */
export function tcpListenersOn(port: number): number {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  return readFileSync("/proc/net/tcp", "utf8")
    .split("\n")
    .slice(1)
    .filter((line) => {
      const f = line.trim().split(/\s+/);
      return f[1]?.endsWith(hex) === true && f[3] === "0A";
    }).length;
}
