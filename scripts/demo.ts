/**
 * The demo an operator runs first: a simulated mesh of real MeshNodes (real keys, real signatures,
 * real certificates; only the network and the clock are simulated) going through what enjin
 * promises — a signed broadcast reaching everyone, a killed node detected, a rogue node ignored.
 *
 *   npm run demo -- [--nodes N] [--seed S] [--json]
 *
 * Progress goes to stderr, the result to stdout (one JSON object with --json). Exit code 0 when every
 * step met its expectation, 1 when one did not, 2 on bad arguments.
 */
import { parseArgs } from "node:util";
import { createMesh } from "../agent/index.ts";
import {
  encodeFrame,
  encodePayload,
  fingerprint,
  generateIdentity,
  MessageType,
  sealEnvelope,
} from "../protocol/index.ts";

const USAGE = `usage: npm run demo -- [--nodes N] [--seed S] [--json]

Boots N simulated nodes (default 300, 2..5000), certified by a fresh root key, and shows:
  1. a broadcast signed by one node reaching every other node, each checking the signature once;
  2. a node killed without warning, declared dead by every other member (SWIM + Lifeguard);
  3. a rogue endpoint sending forged, garbage and unannounced messages, all refused and counted.
Times are simulated (virtual) milliseconds; the CPU time it took is printed at the end.`;

function fail(message: string): never {
  process.stderr.write(`demo: ${message}\n\n${USAGE}\n`);
  process.exit(2);
}

let values: { nodes?: string; seed?: string; json?: boolean; help?: boolean };
try {
  ({ values } = parseArgs({
    options: {
      nodes: { type: "string" },
      seed: { type: "string" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  }));
} catch (err) {
  fail((err as Error).message);
}
if (values.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const nodes = Number(values.nodes ?? 300);
const seed = Number(values.seed ?? 1);
if (!Number.isInteger(nodes) || nodes < 2 || nodes > 5000)
  fail(`--nodes must be a whole number from 2 to 5000, got ${values.nodes}`);
if (!Number.isInteger(seed) || seed < 0) fail(`--seed must be a whole number >= 0, got ${values.seed}`);

const say = (line: string) => {
  if (!values.json) process.stderr.write(`${line}\n`);
};
const cpuStart = performance.now();
const checks: { step: string; ok: boolean; detail: Record<string, unknown> }[] = [];

say(`booting ${nodes} nodes (seed ${seed}) ...`);
const mesh = await createMesh({ nodes, seed, latencyMs: 1, jitterMs: 2, sharedVerifyMemo: true });
mesh.run(2_000);
say(
  `  mesh id: ${fingerprint(mesh.root.publicKey)}  every node alive: ${mesh.nodes.every((n) => n.node.membership.aliveCount() === nodes)}`,
);

// 1. A signed broadcast.
const origin = mesh.nodes[0]!;
const id = origin.node.publish("demo", new TextEncoder().encode("hello, mesh"));
const sentAt = mesh.clock.now();
const reachedAll = () => mesh.nodes.every((n) => n === origin || n.delivered.has(id));
const tookMs = mesh.runUntil(reachedAll, 10_000, 1);
const reached = mesh.nodes.filter((n) => n === origin || n.delivered.has(id)).length;
const times = mesh.nodes
  .flatMap((n) => (n.delivered.has(id) ? [n.delivered.get(id)! - sentAt] : []))
  .sort((a, b) => a - b);
const p99 = Math.round(times[Math.floor(times.length * 0.99)] ?? 0);
checks.push({
  step: "broadcast",
  ok: reachedAll(),
  detail: { reached, of: nodes, allByMs: tookMs, p99Ms: p99 },
});
say(
  `1. broadcast from ${origin.id.slice(0, 8)}: reached ${reached}/${nodes} nodes, 99% by ${p99} ms, all by ${tookMs} ms`,
);

// 2. A killed node.
const victim = mesh.nodes[Math.floor(nodes / 2)]!;
await mesh.kill(victim.index);
say(`2. killed ${victim.id.slice(0, 8)} without warning; waiting for the others to notice ...`);
const deadEverywhere = () =>
  mesh.nodes.every((n) => !n.alive || n.node.membership.member(victim.id)?.state === "dead");
const detectMs = mesh.runUntil(deadEverywhere, 200_000, 100);
checks.push({ step: "failure-detection", ok: deadEverywhere(), detail: { declaredDeadByAllMs: detectMs } });
say(`   declared dead by every member after ${(detectMs / 1000).toFixed(1)} s`);

// 3. A rogue endpoint.
const rogue = await mesh.net.memory()({ listen: "rogue" });
const stranger = generateIdentity(new Uint8Array(32).fill(0xee));
const forgedAs = mesh.nodes[1]!;
let injected = 0;
for (const target of mesh.nodes.filter((n) => n.alive).slice(0, 50)) {
  const payload = encodePayload(MessageType.Broadcast, {
    topic: "evil",
    data: new Uint8Array([6, 6, 6]),
    sentAtMs: mesh.clock.now(),
  });
  const unannounced = sealEnvelope(stranger, MessageType.Broadcast, payload);
  const forged = sealEnvelope(stranger, MessageType.Broadcast, payload);
  forged.set(forgedAs.identity.publicKey, 3); // claims a member's key; the signature is the stranger's
  rogue.send(
    target.addr,
    encodeFrame([
      { hops: 3, envelope: unannounced },
      { hops: 3, envelope: forged },
    ]),
  );
  rogue.send(target.addr, new Uint8Array([1, 200, 7, 7, 7]));
  injected += 3;
}
mesh.run(2_000);
const reasons: Record<string, number> = {};
for (const n of mesh.nodes) {
  for (const [k, v] of Object.entries(n.node.counters.snapshot()))
    if (k.startsWith("rejected:")) reasons[k] = (reasons[k] ?? 0) + v;
}
const evilDelivered = mesh.nodes.some((n) => [...n.delivered.keys()].some((k) => k !== id));
const refused = Object.values(reasons).reduce((a, b) => a + b, 0);
checks.push({
  step: "rogue",
  ok: !evilDelivered && refused >= injected,
  detail: { injected, refused: reasons },
});
say(
  `3. rogue sent ${injected} bad frames/messages: delivered to nobody: ${!evilDelivered}; refused, by reason: ${JSON.stringify(reasons)}`,
);

await mesh.close();
const cpuMs = Math.round(performance.now() - cpuStart);
const ok = checks.every((c) => c.ok);
if (values.json) process.stdout.write(`${JSON.stringify({ nodes, seed, ok, checks, cpuMs })}\n`);
else
  process.stdout.write(
    `${ok ? "OK" : "FAILED"}: ${checks.map((c) => `${c.step} ${c.ok ? "ok" : "FAILED"}`).join(", ")} (${(cpuMs / 1000).toFixed(1)} s of CPU)\n`,
  );
process.exit(ok ? 0 : 1);
