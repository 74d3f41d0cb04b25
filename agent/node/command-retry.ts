/**
 * Asking silent nodes again. A command's results climb its tree hop by hop with no acknowledgement,
 * so one lost frame loses an answer; the node at the top of a tree therefore sends the command again,
 * straight to each node it expects an answer from and has not heard, every interval
 * (MeshNode.retryCommand): a node that never heard the command runs it; one that did sends the answer
 * it kept. Two nodes are at the top of a tree: the one where the operator waits (control-api.ts), and
 * a ring-1 node for the command it carried down into its children's network (daemon.ts).
 */
import type { MeshNode } from "../mesh-node.ts";

/** How often the nodes that have not answered are asked again. */
export const COMMAND_RETRY_INTERVAL_MS = 2_000;

/**
 * Every `intervalMs`, send `envelope` again to the nodes `silent()` names (until stopped, or until
 * `untilMs` on the wall clock when given); `onRetry` hears how many were asked. Returns `stop`.
 */
export function retrySilent(
  node: MeshNode,
  envelope: Uint8Array,
  silent: () => readonly string[],
  options: { intervalMs?: number; untilMs?: number; onRetry?: (sent: number) => void } = {},
): () => void {
  const timer = setInterval(() => {
    const ids = silent();
    if (ids.length === 0 || (options.untilMs !== undefined && Date.now() >= options.untilMs)) {
      clearInterval(timer);
      return;
    }
    const sent = node.retryCommand(envelope, ids);
    if (sent > 0) options.onRetry?.(sent);
  }, options.intervalMs ?? COMMAND_RETRY_INTERVAL_MS);
  timer.unref();
  return () => clearInterval(timer);
}
