import { describe, expect, it } from "vitest";
import { builtinModules, modinfoDepends, moduleLoadOrder } from "./kernel-modules.ts";

/** A fake module: some ELF-ish bytes, then a .modinfo section of NUL-separated key=value strings. */
const ko = (...modinfo: string[]) =>
  Buffer.concat([
    Buffer.from("\x7fELF....code depends=not-this\0"),
    Buffer.from(`\0${modinfo.join("\0")}\0`),
  ]);

describe("modinfoDepends", () => {
  it("reads the depends= field, folding dashes", () => {
    expect(
      modinfoDepends(ko("license=GPL", "depends=virtio_ring,virtio,net-failover", "name=virtio_net")),
    ).toEqual(["virtio_ring", "virtio", "net_failover"]);
  });

  it("gives [] for a module with no dependencies", () => {
    expect(modinfoDepends(ko("depends=", "name=virtio_ring"))).toEqual([]);
  });

  it("refuses bytes without a depends= field", () => {
    expect(() => modinfoDepends(Buffer.from("xz compressed \0 nothing"))).toThrow(/no depends= field/);
  });
});

describe("builtinModules", () => {
  it("names the modules in modules.builtin", () => {
    expect(
      builtinModules("kernel/drivers/virtio/virtio.ko\nkernel/drivers/tty/serial/8250/8250-core.ko\n"),
    ).toEqual(new Set(["virtio", "8250_core"]));
  });
});

describe("moduleLoadOrder", () => {
  const deps: Record<string, string[]> = {
    virtio_ring: [],
    virtio: ["virtio_ring"],
    virtio_pci: ["virtio_ring", "virtio_pci_modern_dev", "virtio", "virtio_pci_legacy_dev"],
    virtio_pci_modern_dev: [],
    virtio_pci_legacy_dev: [],
    failover: [],
    net_failover: ["failover"],
    virtio_net: ["virtio_ring", "virtio", "net_failover"],
    virtio_console: ["virtio", "virtio_ring"],
    a: ["b"],
    b: ["a"],
  };
  const dependsOf = (n: string) => deps[n] ?? null;

  it("loads every dependency first and each module once", () => {
    const order = moduleLoadOrder(["virtio_pci", "virtio_net", "virtio_console"], dependsOf, new Set());
    expect(order).toEqual([
      "virtio_ring",
      "virtio_pci_modern_dev",
      "virtio",
      "virtio_pci_legacy_dev",
      "virtio_pci",
      "failover",
      "net_failover",
      "virtio_net",
      "virtio_console",
    ]);
  });

  it("skips modules built into the kernel", () => {
    expect(
      moduleLoadOrder(["virtio_net"], dependsOf, new Set(["virtio", "virtio_ring", "failover"])),
    ).toEqual(["net_failover", "virtio_net"]);
  });

  it("names a missing module and who needed it", () => {
    expect(() =>
      moduleLoadOrder(["virtio_net"], (n) => (n === "failover" ? null : dependsOf(n)), new Set()),
    ).toThrow(/no module failover \(needed by virtio_net -> net_failover\)/);
  });

  it("refuses a cycle", () => {
    expect(() => moduleLoadOrder(["a"], dependsOf, new Set())).toThrow(/cycle: a -> b -> a/);
  });
});
