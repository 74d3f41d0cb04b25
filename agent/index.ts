/**
 * agent/ — the running node: a MeshNode wires the rings/ state machines to a transport and a clock;
 * transports move frames (memory now; ZeroMQ and NATS next); clocks are real or virtual; the
 * simulation builds thousands of MeshNodes on the memory network in one process. Later: lifecycle,
 * supervision, the store and the control socket. Other folders import only this file.
 */
export * from "./clock.ts";
export * from "./mesh-node.ts";
export * from "./simulation.ts";
export * from "./transport/memory.ts";
export * from "./transport/transport.ts";
export * from "./virtual-clock.ts";
