/**
 * agent/ — the running node. A MeshNode wires the rings/ state machines to a transport and a clock;
 * transports move frames (memory, zeromq, nats) behind one contract; nats-server.ts supervises
 * Debian's nats-server; store/ keeps the node's state in LevelDB and its key in a 0600 file;
 * daemon/ holds the daemon's config, logger and control socket; node/ is ringd itself (seed init,
 * joins, commands, the control API); the simulation builds thousands of MeshNodes on the memory
 * network in one process. Other folders import only this file.
 */
export * from "./clock.ts";
export * from "./daemon/index.ts";
export * from "./mesh-node.ts";
export * from "./mesh-node-commands.ts";
export * from "./nats-server.ts";
export * from "./nats-server-files.ts";
export * from "./node/admit.ts";
export * from "./node/commands.ts";
export * from "./node/control-api.ts";
export * from "./node/daemon.ts";
export * from "./node/join.ts";
export * from "./node/mesh-state.ts";
export * from "./node/seed.ts";
export * from "./simulation.ts";
export * from "./store/audit-log.ts";
export * from "./store/command-seen.ts";
export * from "./store/errors.ts";
export * from "./store/key-file.ts";
export * from "./store/store.ts";
export * from "./supervise/index.ts";
export * from "./transport/memory.ts";
export * from "./transport/nats.ts";
export * from "./transport/nkey.ts";
export * from "./transport/transport.ts";
export * from "./transport/zeromq.ts";
export * from "./transport/zeromq-address.ts";
export * from "./transport/zeromq-keys.ts";
