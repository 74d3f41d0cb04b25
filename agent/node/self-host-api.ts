/**
 * The control-socket method of self-hosting, `node.create` (ringctl node create): start a
 * ring-(N+1) ringd as a supervised child of this node, with a token this node mints for it
 * (self-host.ts). Like `token.create`, it acts on the local node only and is authorised by the
 * control socket's permissions (the user running ringd, and root). Parameters are outside input:
 * checked with a schema and refused with a named error before anything changes.
 */
import * as v from "valibot";
import type { ControlHandler } from "../daemon/control-socket.ts";
import { InvalidParamsError, NotAvailableError } from "./control-api.ts";
import type { Daemon } from "./daemon.ts";
import { createRingdChild, MAX_RINGD_CHILD_TOKEN_TTL_MS, type RingdChildCreated } from "./self-host.ts";

const port = v.pipe(v.number(), v.safeInteger(), v.minValue(1), v.maxValue(65_535));
const labels = v.pipe(v.array(v.string()), v.maxLength(32));
const count = v.pipe(v.number(), v.safeInteger(), v.minValue(1));
const nodeCreate = v.strictObject({
  name: v.pipe(v.string(), v.maxLength(64)),
  strategy: v.pipe(v.string(), v.maxLength(32)),
  childPorts: v.strictObject({ firstPort: port, lastPort: port }),
  tiers: v.optional(labels, []),
  compartment: v.optional(labels),
  limits: v.optional(
    v.strictObject({
      memoryBytes: v.optional(count),
      pids: v.optional(count),
      cpuMillis: v.optional(count),
      openFiles: v.optional(count),
    }),
  ),
  logLevel: v.optional(v.picklist(["fatal", "error", "warn", "info", "debug", "trace", "silent"])),
  tokenTtlMs: v.optional(
    v.pipe(v.number(), v.safeInteger(), v.minValue(1_000), v.maxValue(MAX_RINGD_CHILD_TOKEN_TTL_MS)),
  ),
});

/** The host part of a `host:port` listen address ("[::1]" keeps its brackets). */
export function listenHostOf(listen: string): string {
  return listen.slice(0, listen.lastIndexOf(":"));
}

/** What `node.create` answers. */
export type NodeCreateResult = RingdChildCreated;

/** The self-hosting handlers, by method name, to serve beside controlHandlers(daemon). */
export function selfHostHandlers(daemon: Daemon): Record<string, ControlHandler> {
  return {
    "node.create": async (params): Promise<NodeCreateResult> => {
      const r = v.safeParse(nodeCreate, params ?? {});
      if (!r.success)
        throw new InvalidParamsError(
          `node.create: ${r.issues.map((i) => `${v.getDotPath(i) ?? "params"}: ${i.message}`).join("; ")}`,
        );
      const tokens = daemon.tokens;
      if (tokens === undefined)
        throw new NotAvailableError(
          "this node may not issue certificates (no issuer role), so it cannot host a ringd child",
        );
      return createRingdChild(
        {
          supervisor: daemon.supervisor,
          tokens,
          selfCert: daemon.selfCert,
          ports: daemon.config.childPortRange,
          listenHost: listenHostOf(daemon.config.listen),
          // A seed's child sits on the seed's network, over its transport; a ring-1 node's child on
          // the children's network it hosts, which is ZeroMQ (child-network.ts).
          transport: daemon.selfCert.ring === 0 ? daemon.config.transport : "zeromq",
          ...(daemon.selfCert.ring === 0 &&
          daemon.config.natsUrl !== null &&
          daemon.config.natsCaFile !== null
            ? { nats: { url: daemon.config.natsUrl, caFile: daemon.config.natsCaFile } }
            : {}),
          nowMs: () => Date.now(),
          audit: async (kind, data) => {
            await daemon.store.appendAudit(kind, { ...data }, Date.now());
          },
        },
        r.output,
      );
    },
  };
}
