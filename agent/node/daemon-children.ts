/**
 * The daemon's children: the Supervisor that ringd opens on start, on the node's store, its
 * configured port range and children directory (`<dataDir>-children` by default, outside the data
 * dir so that no child can reach the node's key or database), with every built-in strategy. Opening
 * it recovers the children an earlier ringd left running; closing it leaves them running. What
 * happens to children is logged; a give-up goes to `onGiveUp` (the daemon publishes it, signed).
 */
import type { Logger } from "pino";
import type { Clock } from "../clock.ts";
import type { DaemonConfig } from "../daemon/config-fields.ts";
import type { NodeStore } from "../store/store.ts";
import type { ChildGiveUpEvent, Supervisor, SupervisorEvent } from "../supervise/index.ts";

/** Events worth an info line; the rest are logged at debug. */
const NOTABLE: ReadonlySet<SupervisorEvent["kind"]> = new Set([
  "started",
  "recovered",
  "exited",
  "start-failed",
  "stopped",
  "removed",
  "gave-up",
  "unhealthy",
  "swept",
]);

/** What openDaemonSupervisor needs. */
export interface DaemonSupervisorOptions {
  readonly config: DaemonConfig;
  readonly store: NodeStore;
  readonly clock: Clock;
  readonly log: Logger;
  /** The restart policy gave up on a child. */
  readonly onGiveUp: (event: ChildGiveUpEvent) => void;
}

/** Open the node's Supervisor (loading the supervision code only now) and recover its children. */
export async function openDaemonSupervisor(options: DaemonSupervisorOptions): Promise<Supervisor> {
  const { config, store, clock, log } = options;
  const { Supervisor } = await import("../supervise/index.ts");
  const supervisor = await Supervisor.open({
    store,
    clock,
    childrenDir: config.childrenDir,
    ports: config.childPortRange,
    onGiveUp: options.onGiveUp,
    onEvent: (event) => {
      const { kind, ...fields } = event;
      if (kind === "error" || kind === "record-unreadable") log.error(fields, `child ${kind}`);
      else if (NOTABLE.has(kind)) log.info(fields, `child ${kind}`);
      else log.debug(fields, `child ${kind}`);
    },
  });
  const children = supervisor.list();
  if (children.length > 0)
    log.info(
      { children: children.map((c) => ({ name: c.name, phase: c.phase, pid: c.pid })) },
      "children recovered",
    );
  return supervisor;
}
