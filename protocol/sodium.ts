/**
 * sodium-native (libsodium), loaded with `require` instead of `import` — the one place any of
 * enjin's folders gets it from.
 *
 * sodium-native is a CommonJS package. When an ES module imports a CommonJS one, node first scans
 * its source for named exports (cjs-module-lexer, plain JavaScript on Node 20); sodium-native's
 * index.js is 105 KB, enough for V8 to optimise the scanner with TurboFan (~30 ms of compiling),
 * and what that compile allocates stays in the process: ~2 MiB of an idle ringd's private memory
 * (docs/BENCHMARKS.md, "Idle memory"). `require` does not scan.
 */
import { createRequire } from "node:module";
import type SodiumNative from "sodium-native";

/** The libsodium binding (its types: protocol/sodium-native.d.ts). */
export const sodium: typeof SodiumNative = createRequire(import.meta.url)("sodium-native");
