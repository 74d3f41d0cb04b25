/**
 * Which kernel modules the test guest must load, and in what order. Debian's cloud kernel builds the
 * virtio drivers as modules, so the guest's initramfs carries them and its /init insmods them in
 * dependency order (busybox insmod does not resolve dependencies). Pure: the bytes of the .ko files
 * and the kernel's modules.builtin come in, names come out.
 */

/** Module names are compared with '-' folded to '_', as the kernel does. */
export function moduleName(name: string): string {
  return name.replaceAll("-", "_");
}

const DEPENDS = Buffer.from("depends=", "ascii");

/**
 * The `depends=` list of a module's .modinfo section: the modules it needs loaded first. Returns []
 * for a module that needs none; throws if the file has no `depends=` field at all (not a module, or
 * compressed).
 */
export function modinfoDepends(ko: Uint8Array): string[] {
  const bytes = Buffer.from(ko.buffer, ko.byteOffset, ko.byteLength);
  for (let at = bytes.indexOf(DEPENDS); at >= 0; at = bytes.indexOf(DEPENDS, at + 1)) {
    if (at > 0 && bytes[at - 1] !== 0) continue; // inside another string
    const end = bytes.indexOf(0, at);
    const value = bytes.subarray(at + DEPENDS.length, end < 0 ? bytes.length : end).toString("ascii");
    return value === "" ? [] : value.split(",").map(moduleName);
  }
  throw new RangeError("no depends= field: not an uncompressed kernel module");
}

/** Names of the modules built into the kernel, from lib/modules/VERSION/modules.builtin. */
export function builtinModules(modulesBuiltin: string): Set<string> {
  const names = new Set<string>();
  for (const line of modulesBuiltin.split("\n")) {
    const file = line.trim().split("/").pop();
    if (file?.endsWith(".ko")) names.add(moduleName(file.slice(0, -3)));
  }
  return names;
}

/**
 * The modules to load for `wanted`, dependencies first, each once, skipping built-in ones.
 * `dependsOf(name)` returns a module's dependencies, or null if the kernel has no such module.
 */
export function moduleLoadOrder(
  wanted: readonly string[],
  dependsOf: (name: string) => string[] | null,
  builtin: ReadonlySet<string>,
): string[] {
  const order: string[] = [];
  const done = new Set<string>();
  const visiting = new Set<string>();
  const visit = (raw: string, path: readonly string[]) => {
    const name = moduleName(raw);
    if (done.has(name) || builtin.has(name)) return;
    if (visiting.has(name)) throw new RangeError(`module dependency cycle: ${[...path, name].join(" -> ")}`);
    const deps = dependsOf(name);
    if (deps === null)
      throw new RangeError(
        `the kernel has no module ${name}${path.length > 0 ? ` (needed by ${path.join(" -> ")})` : ""} and does not build it in`,
      );
    visiting.add(name);
    for (const dep of deps) visit(dep, [...path, name]);
    visiting.delete(name);
    done.add(name);
    order.push(name);
  };
  for (const name of wanted) visit(name, []);
  return order;
}
