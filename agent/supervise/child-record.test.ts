import * as v from "valibot";
import { describe, expect, it } from "vitest";
import { CHILD_RECORD_VERSION, childRecordSchema } from "./child-record.ts";

describe("childRecordSchema", () => {
  it("gives back a spec's env, limits and driver settings as written (an agent restart keeps them)", () => {
    const spec = {
      name: "web",
      command: ["/usr/bin/node", "server.js"],
      env: { MODE: "prod" },
      limits: { memoryBytes: 64 * 1024 * 1024, pids: 32 },
      driver: { adoptDescendants: true },
    };
    const stored = JSON.parse(
      JSON.stringify({
        version: CHILD_RECORD_VERSION,
        spec,
        strategy: "unix-user",
        restartPolicy: {},
        health: [],
        port: 20_001,
        dir: "/var/lib/enjin-children/web/dir",
        createdMs: 1,
        desired: "running",
        handle: null,
        history: { restartsMs: [], consecutiveFailures: 0, healthySinceMs: null },
        restarts: 0,
        gaveUp: null,
        lastExit: null,
      }),
    );
    expect(v.parse(childRecordSchema, stored).spec).toEqual(spec);
    // Written before `launching` existed: read as no start under way; one written with it keeps it.
    expect(v.parse(childRecordSchema, stored).launching).toBeNull();
    const launching = { atMs: 5, runId: "0b7e6c1e-2f55-4c1c-9d3a-4f1f0c8e2a11" };
    expect(v.parse(childRecordSchema, { ...stored, launching }).launching).toEqual(launching);
  });
});
