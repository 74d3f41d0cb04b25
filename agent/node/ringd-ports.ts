/**
 * The ports one ringd listens on, as offsets from its listen port (`--listen HOST:PORT`), defined
 * here once: the daemon, the NATS link and the children's network bind them, and a parent that runs
 * a ringd as its child (self-host.ts) allocates it the whole block, PORT .. PORT + RINGD_PORT_BLOCK - 1,
 * so that no other child of that parent is handed one of them.
 *
 *   PORT + 0  peers: its seat on its parent's network (every ringd)
 *   PORT + 1  joins: the one-time-token endpoint (an issuer)
 *   PORT + 2  nats-server clients (a ring-0 seed on transport nats)
 *   PORT + 3  nats-server routes from other seeds (the same)
 *   PORT + 4  the children's network it hosts for the nodes it certifies (an issuer of ring >= 1)
 *
 * A ringd child is of ring 1 or 2 and runs no nats-server, so + 2 and + 3 stay unbound; they are in
 * its block anyway: a block is consecutive, and the layout is the same for every ringd.
 */

/** The listen port itself: peers. */
export const LISTEN_PORT_OFFSET = 0;
/** An issuer takes joins on the listen port plus this. */
export const JOIN_PORT_OFFSET = 1;
/** A seed's nats-server listens for clients on the listen port plus this. */
export const NATS_PORT_OFFSET = 2;
/** A seed's nats-server takes routes from other seeds' servers on the listen port plus this. */
export const NATS_ROUTE_PORT_OFFSET = 3;
/** An issuer of ring >= 1 hosts its children's network on the listen port plus this. */
export const CHILD_NETWORK_PORT_OFFSET = 4;

/** Every port a ringd may listen on, by what it is for. */
export const RINGD_PORT_OFFSETS = {
  listen: LISTEN_PORT_OFFSET,
  join: JOIN_PORT_OFFSET,
  natsClients: NATS_PORT_OFFSET,
  natsRoutes: NATS_ROUTE_PORT_OFFSET,
  childNetwork: CHILD_NETWORK_PORT_OFFSET,
} as const;

/** How many consecutive ports, from its listen port, a ringd child is allocated. */
export const RINGD_PORT_BLOCK = Math.max(...Object.values(RINGD_PORT_OFFSETS)) + 1;
