/**
 * A TCP port to hand to a process under test: one the OS chose, free when this returns (another
 * process may still take it before the caller binds it).
 */
import { createServer } from "node:net";

/** A port nothing listens on now on 127.0.0.1 (the OS's choice). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
