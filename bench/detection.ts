/**
 * Failure-detection benchmark: on a simulated mesh of full MeshNodes (real keys, real signatures,
 * the daemon's membership settings: memberlist's LAN config plus Lifeguard), a node is killed
 * without a word and we time, in virtual seconds, (1) the first `suspect` anywhere, (2) the first
 * `dead` anywhere, and (3) the moment every live member holds it dead.
 *
 * memberlist's default LAN config declares a failed node dead after its suspicion timeout,
 * suspicionMult × log10(n) × probeInterval = 4 × 2 × 1 s = 8 s at 100 nodes (12 s at 1,000), counted
 * from the first failed probe; our numbers include the wait for that first probe.
 *
 * Run directly to print JSON: `npx tsx bench/detection.ts [nodes…]`.
 */
import { pathToFileURL } from "node:url";
import { createMesh } from "../agent/index.ts";
import { lanConfig, suspicionMinTimeoutMs } from "../rings/index.ts";

/** One detection trial. */
export interface DetectionResult {
  readonly nodes: number;
  readonly seed: number;
  /** Virtual ms from the kill to the first suspect, the first dead, and dead at every live member. */
  readonly firstSuspectMs: number | null;
  readonly firstDeadMs: number | null;
  readonly deadEverywhereMs: number | null;
  /** memberlist's minimum suspicion timeout for this size with the same settings. */
  readonly memberlistSuspicionMs: number;
  /** Healthy members that someone declared dead during the trial (should be 0). */
  readonly falseDeaths: number;
  readonly wallMs: number;
}

/** Kill one node of a `nodes`-node mesh and time its detection. */
export async function measureDetection(nodes: number, seed: number): Promise<DetectionResult> {
  const wallStart = performance.now();
  const mesh = await createMesh({ nodes, seed, latencyMs: 1, jitterMs: 2, sharedVerifyMemo: true });
  try {
    mesh.run(3_000);
    const victimIndex = (seed * 37) % nodes;
    const victim = mesh.nodes[victimIndex]!;
    let firstSuspectAt: number | undefined;
    let firstDeadAt: number | undefined;
    let falseDeaths = 0;
    for (const n of mesh.nodes) {
      n.node.onMemberChange((id, state) => {
        if (id !== victim.id) {
          if (state === "dead") falseDeaths++;
          return;
        }
        if (state === "suspect") firstSuspectAt ??= mesh.clock.now();
        if (state === "dead") firstDeadAt ??= mesh.clock.now();
      });
    }
    await mesh.kill(victimIndex);
    const killedAt = mesh.clock.now();
    const deadEverywhere = () =>
      mesh.nodes.every((n) => !n.alive || n.node.membership.member(victim.id)?.state === "dead");
    mesh.runUntil(deadEverywhere, 200_000, 100);
    const since = (t: number | undefined) => (t === undefined ? null : Math.round(t - killedAt));
    return {
      nodes,
      seed,
      firstSuspectMs: since(firstSuspectAt),
      firstDeadMs: since(firstDeadAt),
      deadEverywhereMs: deadEverywhere() ? mesh.clock.now() - killedAt : null,
      memberlistSuspicionMs: suspicionMinTimeoutMs(
        lanConfig().suspicionMult,
        nodes,
        lanConfig().probeIntervalMs,
      ),
      falseDeaths,
      wallMs: Math.round(performance.now() - wallStart),
    };
  } finally {
    await mesh.close();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const sizes = process.argv.slice(2).map(Number);
  const results = [];
  for (const nodes of sizes.length > 0 ? sizes : [100, 1_000]) results.push(await measureDetection(nodes, 1));
  console.log(JSON.stringify(results, null, 2));
}
