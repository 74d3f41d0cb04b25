/**
 * The control channel between the agent and a VM's guest: a virtio-serial port named `enjin.ctl`
 * (the guest opens /dev/vportNpM whose /sys/class/virtio-ports/vportNpM/name says so), backed on the
 * host by a UNIX socket qemu listens on (`ctl.sock` in the child's directory). Lines of ASCII, LF-ended:
 *
 *   guest -> host  `ready`          the guest's service is up (sent each time the guest opens the port)
 *   host -> guest  `ping`           are you healthy?
 *   guest -> host  `pong`           yes (the guest checked its service)
 *   guest -> host  `fail <detail>`  no, and why
 *
 * qemu drops what the guest writes while no host end is connected, and holds what the host writes
 * until the guest opens the port; so readiness does not rely on catching `ready`: until it is seen,
 * the host keeps sending `ping`, and a `pong` counts as ready too. qemu accepts one host connection
 * at a time; the driver keeps one per running VM.
 */
import { connect, type Socket } from "node:net";
import { GuestChannelError } from "./errors.ts";

/** Longest line the host accepts from a guest; a longer one closes the connection. */
export const MAX_GUEST_LINE_BYTES = 256;
/** How often `ready` re-sends `ping` while waiting for the guest. */
export const READY_PING_INTERVAL_MS = 100;
/** How often a connection attempt is retried while qemu has not made its socket yet. */
const CONNECT_RETRY_MS = 20;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Waiter {
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
}

/** The host end of one VM's control channel. */
export class GuestChannel {
  private socket: Socket | undefined;
  private connecting: Promise<Socket> | undefined;
  private buffer = "";
  private readySeen = false;
  private closed = false;
  private readonly readyWaiters = new Set<Waiter>();
  private readonly pongWaiters = new Set<Waiter>();

  /**
   * @param socketPath qemu's ctl.sock
   * @param alive tells whether the VM still runs, so waiting on a dead one ends at once
   */
  constructor(
    private readonly socketPath: string,
    private readonly alive: () => Promise<boolean>,
  ) {}

  /** True once the guest said `ready` (or answered a ping) on this connection. */
  get isReady(): boolean {
    return this.readySeen;
  }

  /** Wait until the guest is ready; throws GuestChannelError after `timeoutMs` or if the VM is gone. */
  async ready(timeoutMs: number): Promise<void> {
    if (this.readySeen) return;
    const deadline = Date.now() + timeoutMs;
    const seen = this.waiter(this.readyWaiters);
    let settled = false;
    seen.promise.then(
      () => {
        settled = true;
      },
      () => {
        settled = true;
      },
    );
    try {
      while (!settled && Date.now() < deadline) {
        try {
          (await this.connected(deadline)).write("ping\n");
        } catch (err) {
          if (!(await this.alive()))
            throw new GuestChannelError("the VM exited before its guest said ready", { cause: err });
        }
        await Promise.race([seen.promise.catch(() => {}), sleep(READY_PING_INTERVAL_MS)]);
      }
      if (settled) return await seen.promise;
      throw new GuestChannelError(
        (await this.alive())
          ? `the guest did not say ready on ${this.socketPath} within ${timeoutMs} ms`
          : "the VM exited before its guest said ready",
      );
    } finally {
      seen.cancel();
    }
  }

  /** One health question: resolves on `pong`, throws GuestChannelError on `fail ...`, silence or a dead VM. */
  async ping(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const socket = await this.connected(deadline);
    const answer = this.waiter(this.pongWaiters);
    let timer: NodeJS.Timeout | undefined;
    const silence = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new GuestChannelError(`the guest did not answer ping within ${timeoutMs} ms`)),
        Math.max(0, deadline - Date.now()),
      );
    });
    try {
      socket.write("ping\n");
      await Promise.race([answer.promise, silence]);
    } finally {
      clearTimeout(timer);
      answer.cancel();
    }
  }

  /** Close the host end; waiters fail. Safe to call more than once. */
  close(): void {
    this.closed = true;
    this.drop(new GuestChannelError("the control channel was closed"));
  }

  /** A waiter in `set`; `cancel` takes it out without settling it. */
  private waiter(set: Set<Waiter>): { promise: Promise<void>; cancel: () => void } {
    let waiter: Waiter | undefined;
    const promise = new Promise<void>((resolve, reject) => {
      waiter = { resolve, reject };
      set.add(waiter);
    });
    return { promise, cancel: () => set.delete(waiter as Waiter) };
  }

  private settle(set: Set<Waiter>, err?: Error): void {
    const all = [...set];
    set.clear();
    for (const w of all) {
      if (err) w.reject(err);
      else w.resolve();
    }
  }

  /** The open connection, connecting (and retrying while qemu has not made its socket) until `deadline`. */
  private connected(deadline: number): Promise<Socket> {
    if (this.closed) return Promise.reject(new GuestChannelError("the control channel was closed"));
    if (this.socket) return Promise.resolve(this.socket);
    this.connecting ??= (async () => {
      try {
        for (;;) {
          try {
            return await this.open();
          } catch (err) {
            if (Date.now() + CONNECT_RETRY_MS >= deadline || !(await this.alive()))
              throw new GuestChannelError(
                `could not connect to the guest's control channel ${this.socketPath}: ${(err as Error).message}`,
                { cause: err },
              );
            await sleep(CONNECT_RETRY_MS);
          }
        }
      } finally {
        this.connecting = undefined;
      }
    })();
    return this.connecting;
  }

  private open(): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const socket = connect(this.socketPath);
      socket.once("error", reject);
      socket.once("connect", () => {
        socket.off("error", reject);
        socket.setEncoding("latin1");
        socket.on("data", (chunk: string) => this.onData(chunk));
        socket.on("error", () => {}); // followed by close
        socket.on("close", () => {
          if (this.socket === socket) this.drop(new GuestChannelError("the VM closed its control channel"));
        });
        this.socket = socket;
        this.buffer = "";
        resolve(socket);
      });
    });
  }

  /** Forget the connection (a later call reconnects); pending pings fail, readiness must be seen again. */
  private drop(err: Error): void {
    this.socket?.destroy();
    this.socket = undefined;
    this.readySeen = false;
    this.settle(this.pongWaiters, err);
    if (this.closed) this.settle(this.readyWaiters, err);
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    for (let nl = this.buffer.indexOf("\n"); nl >= 0; nl = this.buffer.indexOf("\n")) {
      const line = this.buffer.slice(0, nl).replace(/\r$/, "");
      this.buffer = this.buffer.slice(nl + 1);
      this.onLine(line);
    }
    if (this.buffer.length > MAX_GUEST_LINE_BYTES)
      this.drop(new GuestChannelError(`the guest sent a line longer than ${MAX_GUEST_LINE_BYTES} bytes`));
  }

  private onLine(line: string): void {
    if (line === "ready" || line === "pong") {
      this.readySeen = true;
      this.settle(this.readyWaiters);
    }
    if (line === "pong") this.settle(this.pongWaiters);
    else if (line === "fail" || line.startsWith("fail ")) {
      const detail = line.slice(4).trim() || "no detail";
      this.settle(this.pongWaiters, new GuestChannelError(`the guest reports: ${detail}`));
    }
  }
}
