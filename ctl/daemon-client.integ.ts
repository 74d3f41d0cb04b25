/**
 * A ringctl-style command reaching a real control socket through connectDaemon: the socket found
 * from ENJIN_CONTROL_SOCKET or --data-dir, progress on stderr, the result on stdout.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type ControlServer, serveControl } from "../agent/daemon/index.ts";
import { type ProgramSpec, runCli } from "./cli.ts";
import { connectDaemon, DAEMON_OPTIONS } from "./daemon-client.ts";
import { ExitCode } from "./exit-codes.ts";

const program: ProgramSpec = {
  name: "demo",
  summary: "a demo program",
  description: "Talks to a daemon.",
  commands: [
    {
      words: ["node", "status"],
      summary: "ask the daemon for its status",
      description: "Ask the daemon for its status.",
      options: DAEMON_OPTIONS,
      exitCodes: [ExitCode.Unreachable, ExitCode.Refused],
      examples: [],
      async run(ctx) {
        const client = await connectDaemon(ctx);
        try {
          const status = await client.call("status", null, (p) => ctx.info(`progress: ${JSON.stringify(p)}`));
          ctx.result(status, `status: ${JSON.stringify(status)}`);
        } finally {
          client.close();
        }
        return undefined;
      },
    },
  ],
};

async function run(env: Record<string, string>, ...argv: string[]) {
  let stdout = "";
  let stderr = "";
  const code = await runCli(program, argv, {
    stdout: { write: (t: string) => (stdout += t) },
    stderr: { write: (t: string) => (stderr += t) },
    env,
  });
  return { code, stdout, stderr };
}

let dir: string;
let server: ControlServer | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "enjin-cli-"));
});
afterEach(async () => {
  await server?.close();
  server = undefined;
  await rm(dir, { recursive: true, force: true });
});

describe("connectDaemon", () => {
  it("finds the socket from ENJIN_CONTROL_SOCKET or --data-dir; progress on stderr, result on stdout", async () => {
    const sock = join(dir, "ringd.sock");
    server = await serveControl(sock, {
      status: (_params, ctx) => {
        ctx.progress({ step: 1 });
        return { up: true };
      },
    });
    expect(await run({ ENJIN_CONTROL_SOCKET: sock }, "node", "status", "--json")).toEqual({
      code: 0,
      stdout: '{"up":true}\n',
      stderr: 'progress: {"step":1}\n',
    });
    expect((await run({}, "node", "status", "--data-dir", dir)).stdout).toBe('status: {"up":true}\n');
  });

  it("exits 3 and says how to start ringd when nothing listens", async () => {
    const { code, stdout, stderr } = await run({ ENJIN_DATA_DIR: dir }, "node", "status");
    expect({ code, stdout }).toEqual({ code: ExitCode.Unreachable, stdout: "" });
    expect(stderr).toBe(
      `demo: no control socket at ${join(dir, "ringd.sock")}: is ringd running? start it with \`ringd start\`\n`,
    );
  });
});
