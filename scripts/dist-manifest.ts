/**
 * The last step of `npm run build`: write dist/package.json. The built files find the release's
 * version at `../package.json` from dist/ctl/ (ctl/version.ts reads it relative to itself, as the
 * sources do from the repository root), and `"type": "module"` keeps dist/ ESM wherever it is
 * copied. Its time stamp is the build's: scripts/ringd-process.ts runs dist/ only when it is newer
 * than every source the build compiles.
 */
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

const root = join(import.meta.dirname, "..");
const pkg = JSON.parse(await readFile(join(root, "package.json"), "utf8")) as {
  name: string;
  version: string;
};
const manifest = { name: pkg.name, version: pkg.version, private: true, type: "module" };
await writeFile(join(root, "dist", "package.json"), `${JSON.stringify(manifest, null, 2)}\n`);
