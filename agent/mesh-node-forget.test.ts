/**
 * A member declared dead keeps no connection open: MeshNode asks its transport to forget the dead
 * member's address (ZeroMQ then closes that Dealer instead of retrying it every second).
 */
import { afterEach, describe, expect, it } from "vitest";
import { createMesh, type SimMesh } from "./simulation.ts";
import type { Transport } from "./transport/transport.ts";

let mesh: SimMesh | undefined;

afterEach(async () => {
  await mesh?.close();
  mesh = undefined;
});

describe("a member declared dead", () => {
  it("is forgotten by every other node's transport, and nobody else is", async () => {
    const forgotten = new Map<number, string[]>();
    const recording = (t: Transport, index: number): Transport => ({
      address: t.address,
      maxFrameBytes: t.maxFrameBytes,
      send: (to, frame) => t.send(to, frame),
      onFrame: (handler) => t.onFrame(handler),
      close: () => t.close(),
      forget: (to) => forgotten.set(index, [...(forgotten.get(index) ?? []), to]),
    });
    mesh = await createMesh({ nodes: 5, seed: 23, wrapTransport: recording });
    const m = mesh;
    m.run(5_000);
    expect([...forgotten.values()].flat()).toEqual([]);
    const victim = m.nodes[3]!;
    await m.kill(3);
    const deadEverywhere = () =>
      m.nodes.every((n) => !n.alive || n.node.membership.member(victim.id)?.state === "dead");
    m.runUntil(deadEverywhere, 60_000, 100);
    expect(deadEverywhere()).toBe(true);
    for (const n of m.nodes) {
      if (!n.alive) continue;
      expect(forgotten.get(n.index)).toEqual([victim.addr]);
    }
  });
});
