import { defineConfig } from "vitest/config";

// Three kinds of test (see ../shared/STYLE.md): *.test.ts pure and fast, *.sim.ts many nodes on the
// memory network with a virtual clock, *.integ.ts real processes. `npm test` runs all of them.
export default defineConfig({
  test: {
    projects: [
      { test: { name: "unit", include: ["**/*.test.ts"], exclude: ["node_modules/**"] } },
      {
        test: {
          name: "sim",
          include: ["**/*.sim.ts"],
          exclude: ["node_modules/**"],
          testTimeout: 300_000,
          hookTimeout: 120_000,
        },
      },
      {
        test: {
          name: "integ",
          include: ["**/*.integ.ts"],
          exclude: ["node_modules/**"],
          testTimeout: 120_000,
          hookTimeout: 60_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
