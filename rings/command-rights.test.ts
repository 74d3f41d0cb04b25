/**
 * The per-action command rule, every action × role: first the rule itself, then through the real
 * ingest pipeline with real certificates and signatures — a viewer's read-only command is accepted,
 * its mutating one refused after verification and counted by name, and a key with no command role
 * refused before its signature is checked.
 */
import { describe, expect, it } from "vitest";
import {
  type Certificate,
  encodePayload,
  generateIdentity,
  type Identity,
  issueCertificate,
  MessageType,
  type Role,
  sealEnvelope,
  verifyEnvelope,
} from "../protocol/index.ts";
import {
  actionsAllowed,
  COMMAND_ACTIONS,
  type CommandAction,
  commandRefusal,
  explainCommandRefusal,
} from "./command-rights.ts";
import { Counters } from "./counters.ts";
import { ingest } from "./ingest.ts";
import { TrustStore } from "./trust.ts";

const NOW = Date.UTC(2026, 5, 1);
const DAY = 86_400_000;
const ACTIONS = Object.keys(COMMAND_ACTIONS) as CommandAction[];

/** What a viewer gets for each action, written out (not derived from the rule under test). */
const VIEWER: Record<CommandAction, string | null> = {
  exec: "viewer-may-not-exec",
  "child.create": "viewer-may-not-child-create",
  "child.list": null,
  "child.start": "viewer-may-not-child-start",
  "child.stop": "viewer-may-not-child-stop",
  "child.restart": "viewer-may-not-child-restart",
  "child.remove": "viewer-may-not-child-remove",
  "child.logs": null,
};

/** Expected refusal for `roles` sending `action`, by the table above and the documented rule. */
function expected(roles: readonly Role[], action: string): string | null {
  if (roles.includes("admin") || roles.includes("operator")) return null;
  if (roles.includes("viewer") && action in VIEWER) return VIEWER[action as CommandAction];
  return "not-an-operator";
}

const ROLE_SETS: readonly (readonly Role[])[] = [
  ["admin"],
  ["operator"],
  ["viewer"],
  ["operator", "viewer"],
  ["node"],
  ["node", "issuer"],
  [],
];

describe("commandRefusal: every action × role", () => {
  for (const roles of ROLE_SETS)
    for (const action of [...ACTIONS, "frobnicate", "child.nuke"])
      it(`${roles.join("+") || "no roles"} sending ${action}`, () => {
        expect(commandRefusal(roles, action)).toBe(expected(roles, action));
      });

  it("lets a viewer send only the read-only actions, and tells it so", () => {
    expect(actionsAllowed(["viewer"])).toEqual(["child.list", "child.logs"]);
    expect(actionsAllowed(["operator"])).toEqual(ACTIONS);
    expect(actionsAllowed(["node"])).toEqual([]);
    const words = explainCommandRefusal(["viewer"], "child.create");
    expect(words).toMatch(/child\.create needs an operator or admin key/);
    expect(words).toMatch(/may send only child\.list, child\.logs/);
    expect(words).toMatch(/ringctl operator add KEY --role operator/);
    expect(explainCommandRefusal([], "exec")).toMatch(/no roles, so it may send no command at all/);
  });
});

describe("ingest applies the rule to signed commands", () => {
  let seedByte = 0x40;
  const key = (): Identity => generateIdentity(new Uint8Array(32).fill(seedByte++));
  const root = key();
  const admin = key();
  const store = new TrustStore(root.publicKey);
  const certify = (issuer: Identity, subject: Identity, fields: Partial<Certificate>) =>
    store.addCertificate(
      issueCertificate(issuer, {
        subject: subject.publicKey,
        issuer: issuer.publicKey,
        ring: 0,
        roles: ["node"],
        compartment: [],
        tiers: [],
        serial: seedByte,
        notBeforeMs: NOW - DAY,
        expiresMs: NOW + DAY,
        ...fields,
      }),
      NOW,
    );
  certify(root, admin, { roles: ["node", "issuer", "admin"] });
  const senders = new Map<string, { identity: Identity; roles: Role[] }>();
  for (const roles of [["admin"], ["operator"], ["viewer"]] as Role[][]) {
    const identity = key();
    certify(admin, identity, { roles });
    senders.set(roles.join("+"), { identity, roles });
  }
  const nodeKey = key();
  certify(root, nodeKey, { roles: ["node"] });
  senders.set("node", { identity: nodeKey, roles: ["node"] });

  let nonce = 0;
  const command = (sender: Identity, action: string) =>
    sealEnvelope(
      sender,
      MessageType.Command,
      encodePayload(MessageType.Command, {
        selector: {},
        action,
        args: [],
        nonce: new Uint8Array(16).fill(++nonce),
        issuedAtMs: NOW,
        expiresMs: NOW + 60_000,
      }),
    );

  for (const [name, { identity, roles }] of senders)
    for (const action of [...ACTIONS, "frobnicate"])
      it(`${name} sending ${action}`, () => {
        const counters = new Counters();
        let verified = 0;
        const ctx = {
          trust: store,
          ring: 0 as const,
          hasSeen: () => false,
          counters,
          verify: (e: Parameters<typeof verifyEnvelope>[0]) => {
            verified++;
            return verifyEnvelope(e);
          },
        };
        const accepted = ingest(ctx, command(identity, action), 3, NOW);
        const refusal = expected(roles, action);
        if (refusal === null) {
          expect(accepted?.payload).toMatchObject({ action });
          expect(counters.snapshot()).toEqual({ accepted: 1 });
        } else {
          expect(accepted).toBeNull();
          expect(counters.snapshot()).toEqual({ [`rejected:${refusal}`]: 1 });
        }
        // Only a key that may command at all costs a signature check.
        expect(verified).toBe(roles.includes("node") ? 0 : 1);
      });
});
