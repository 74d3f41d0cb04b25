/**
 * Child process for store.integ.ts: writes numbered batches of BATCH_KEYS keys each to the store in
 * argv[2], printing each batch number once written, until it is killed.
 */
import { openStore } from "./store.ts";

/** Keys in each batch the crash writer makes. */
export const CRASH_BATCH_KEYS = 200;

const dir = process.argv[2];
if (dir !== undefined) {
  const store = await openStore(dir);
  const filler = "x".repeat(512);
  for (let i = 0; ; i++) {
    const ops = Array.from({ length: CRASH_BATCH_KEYS }, (_, j) => ({
      type: "put" as const,
      sublevel: "members" as const,
      key: `b${String(i).padStart(6, "0")}:${j}`,
      value: { i, j, filler },
    }));
    await store.batch(ops, { sync: false });
    process.stdout.write(`${i}\n`);
  }
}
