/**
 * What an idle node costs: on a calm simulated mesh (nothing published, nobody failing), how often
 * each MeshNode's timer fires, how many frames it sends, and the process CPU per simulated
 * node-second (the simulator's own work included, so compare runs, not absolute figures).
 *
 * Run directly to print JSON: `npx tsx bench/idle-wakeups.ts [nodes] [seconds]` (default 50, 120).
 */
import { pathToFileURL } from "node:url";
import { createMesh } from "../agent/index.ts";

/** One idle measurement. */
export interface IdleResult {
  readonly nodes: number;
  readonly virtualSeconds: number;
  /** Timer callbacks run per node per virtual second. */
  readonly wakeupsPerNodeSecond: number;
  /** Frames handed to the transport per node per virtual second. */
  readonly framesPerNodeSecond: number;
  /** Process CPU (user + system) per node per virtual second, in microseconds. */
  readonly cpuMicrosPerNodeSecond: number;
}

/** Measure `nodes` idle nodes over `seconds` virtual seconds, after 10 s to settle. */
export async function measureIdle(nodes: number, seconds: number, seed = 5): Promise<IdleResult> {
  let frames = 0;
  const mesh = await createMesh({
    nodes,
    seed,
    latencyMs: 1,
    jitterMs: 2,
    sharedVerifyMemo: true,
    wrapTransport: (t) => ({
      address: t.address,
      maxFrameBytes: t.maxFrameBytes,
      send: (to, frame) => {
        frames++;
        return t.send(to, frame);
      },
      onFrame: (handler) => t.onFrame(handler),
      close: () => t.close(),
    }),
  });
  try {
    mesh.run(10_000);
    let fires = 0;
    const clock = mesh.clock;
    const setTimer = clock.setTimer.bind(clock);
    clock.setTimer = (delayMs, fn) =>
      setTimer(delayMs, () => {
        fires++;
        fn();
      });
    // Let every node re-arm its timer through the counting wrapper before counting.
    mesh.run(2_000);
    fires = 0;
    frames = 0;
    const cpuBefore = process.cpuUsage();
    mesh.run(seconds * 1_000);
    const cpu = process.cpuUsage(cpuBefore);
    const nodeSeconds = nodes * seconds;
    return {
      nodes,
      virtualSeconds: seconds,
      wakeupsPerNodeSecond: fires / nodeSeconds,
      framesPerNodeSecond: frames / nodeSeconds,
      cpuMicrosPerNodeSecond: (cpu.user + cpu.system) / nodeSeconds,
    };
  } finally {
    await mesh.close();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const nodes = Number(process.argv[2] ?? 50);
  const seconds = Number(process.argv[3] ?? 120);
  console.log(JSON.stringify(await measureIdle(nodes, seconds), null, 2));
}
