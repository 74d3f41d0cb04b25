/**
 * `ringd init`: make a ring-0 seed. In one data directory it creates the mesh's root key
 * (`root.key`, 0600 — the mesh id is its fingerprint), the node's own key (`node.key`), the seed's
 * certificate signed by the root (ring 0; roles node, issuer, admin), and a first operator key for
 * the local `ringctl` (`operator.key`, certified by the seed as an admin). All certificates and the
 * mesh identity go into the store in one batch; a second init of the same directory is refused.
 */
import { join } from "node:path";
import {
  fingerprint,
  type Identity,
  issueCertificate,
  keyHex,
  LABEL_PATTERN,
  type Role,
} from "../../protocol/index.ts";
import { loadOrCreateKeyFile } from "../store/key-file.ts";
import type { NodeStore } from "../store/store.ts";
import { newRingSecret } from "../transport/sealed.ts";
import { MeshState } from "./mesh-state.ts";

/** File of the mesh's root key inside the seed's data directory. */
export const ROOT_KEY_FILE = "root.key";
/** File of the first operator's key (for the local ringctl). */
export const OPERATOR_KEY_FILE = "operator.key";
/** How long a seed's own certificate is valid (10 years): every certificate below it must fit inside. */
export const SEED_CERTIFICATE_TTL_MS = 10 * 365 * 24 * 3_600_000;
/** How long the first operator's certificate is valid (1 year). */
export const OPERATOR_CERTIFICATE_TTL_MS = 365 * 24 * 3_600_000;
/** How far back a certificate's not-before is set, to absorb small clock differences. */
export const CLOCK_SLACK_MS = 5 * 60_000;

/** The data directory already belongs to a mesh. */
export class AlreadyInitializedError extends Error {
  override readonly name = "AlreadyInitializedError";
}

/** A label (name, tier, compartment part) is not of the allowed form. */
export class InvalidLabelError extends Error {
  override readonly name = "InvalidLabelError";
}

/** What `initSeed` is told. */
export interface SeedOptions {
  readonly dataDir: string;
  readonly store: NodeStore;
  readonly compartment?: readonly string[];
  readonly tiers?: readonly string[];
  readonly nowMs: number;
}

/** What `initSeed` made. */
export interface SeedResult {
  readonly meshId: string;
  readonly rootKeyFile: string;
  readonly nodeKey: string;
  readonly nodeFingerprint: string;
  readonly operatorKeyFile: string;
  readonly operatorKey: string;
}

/** Throw InvalidLabelError unless every label matches the protocol's label form. */
export function checkLabels(what: string, labels: readonly string[]): void {
  for (const label of labels) {
    if (!LABEL_PATTERN.test(label))
      throw new InvalidLabelError(
        `${what} "${label}" is not a label: use 1 to 63 of a-z, 0-9, '.', '_' and '-', starting with a letter or digit`,
      );
  }
}

/** Make a ring-0 seed in `opts.dataDir` (whose store is open as `opts.store`). */
export async function initSeed(opts: SeedOptions): Promise<SeedResult> {
  const compartment = opts.compartment ?? [];
  const tiers = opts.tiers ?? [];
  checkLabels("compartment part", compartment);
  checkLabels("tier", tiers);
  const state = new MeshState(opts.store);
  const existing = await state.mesh();
  if (existing !== undefined)
    throw new AlreadyInitializedError(
      `${opts.dataDir} already belongs to mesh ${existing.meshId}; start it with \`ringd start --data ${opts.dataDir}\`, ` +
        "or choose an empty --data directory for a new mesh",
    );
  const node = await opts.store.loadIdentity(opts.nowMs);
  const rootKeyFile = join(opts.dataDir, ROOT_KEY_FILE);
  const operatorKeyFile = join(opts.dataDir, OPERATOR_KEY_FILE);
  const root = await loadOrCreateKeyFile(rootKeyFile);
  const operator = await loadOrCreateKeyFile(operatorKeyFile);
  const notBeforeMs = opts.nowMs - CLOCK_SLACK_MS;
  const seedCertificate = issueCertificate(root, {
    subject: node.publicKey,
    issuer: root.publicKey,
    ring: 0,
    roles: ["node", "issuer", "admin"],
    compartment,
    tiers,
    serial: 1,
    notBeforeMs,
    expiresMs: opts.nowMs + SEED_CERTIFICATE_TTL_MS,
  });
  const operatorCertificate = certifyOperator(node, operator.publicKey, ["admin"], 2, opts.nowMs);
  await state.establish(
    root.publicKey,
    { ring: 0, certificate: seedCertificate, chain: [] },
    [operatorCertificate],
    [],
    [],
    undefined,
    newRingSecret(),
  );
  return {
    meshId: fingerprint(root.publicKey),
    rootKeyFile,
    nodeKey: keyHex(node.publicKey),
    nodeFingerprint: fingerprint(node.publicKey),
    operatorKeyFile,
    operatorKey: keyHex(operator.publicKey),
  };
}

/** A ring-0 operator certificate for `operatorKey`, issued by a ring-0 admin node. */
export function certifyOperator(
  admin: Identity,
  operatorKey: Uint8Array,
  roles: readonly Role[],
  serial: number,
  nowMs: number,
): Uint8Array {
  return issueCertificate(admin, {
    subject: operatorKey,
    issuer: admin.publicKey,
    ring: 0,
    roles: [...roles],
    compartment: [],
    tiers: [],
    serial,
    notBeforeMs: nowMs - CLOCK_SLACK_MS,
    expiresMs: nowMs + OPERATOR_CERTIFICATE_TTL_MS,
  });
}
