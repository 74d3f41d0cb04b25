/**
 * Who may send which command: the one rule, used by ingest on every node (before a command is
 * delivered or forwarded), by the node's child commands, and by ringctl to explain a refusal.
 *
 * A command's sender needs one of COMMAND_ROLES at all; that much is checked before the signature
 * (ingest's `authorize`). Once the envelope is verified and its action known, `commandRefusal` decides
 * per action: an action that only reads (COMMAND_ACTIONS says "reads") is open to viewer, operator and
 * admin keys; every other action, and any action this list does not know, needs operator or admin.
 */
import type { Role } from "../protocol/index.ts";

/** What an action does to a node: leaves it as it was ("reads"), or may change it ("changes"). */
export type ActionEffect = "reads" | "changes";

/**
 * Every action a node carries out, with its effect. The list agent/node's actions are checked
 * against (a test there keeps the two equal); add an action here when a node learns it.
 */
export const COMMAND_ACTIONS = {
  exec: "changes",
  "child.create": "changes",
  "child.list": "reads",
  "child.start": "changes",
  "child.stop": "changes",
  "child.restart": "changes",
  "child.remove": "changes",
  "child.logs": "reads",
} as const satisfies Readonly<Record<string, ActionEffect>>;

/** One of COMMAND_ACTIONS' names. */
export type CommandAction = keyof typeof COMMAND_ACTIONS;

/** Roles that may send a command of some action; a key with none of them is refused before its signature is checked. */
export const COMMAND_ROLES: readonly Role[] = ["admin", "operator", "viewer"];
/** Roles that may send every action, read-only or not. */
export const ACTING_ROLES: readonly Role[] = ["admin", "operator"];

/** Whether `action` is one a node knows. */
export function isCommandAction(action: string): action is CommandAction {
  return Object.hasOwn(COMMAND_ACTIONS, action);
}

/** The actions that only read, in list order. */
export function readOnlyActions(): CommandAction[] {
  return (Object.keys(COMMAND_ACTIONS) as CommandAction[]).filter((a) => COMMAND_ACTIONS[a] === "reads");
}

/**
 * Whether a key holding `roles` may send `action`: null when it may, or the refusal reason (a
 * counter name, kebab-case and from a bounded set): `viewer-may-not-<action>` for a known action a
 * viewer may not send (dots become dashes: `viewer-may-not-child-create`), `not-an-operator` otherwise.
 */
export function commandRefusal(roles: readonly Role[], action: string): string | null {
  if (ACTING_ROLES.some((r) => roles.includes(r))) return null;
  if (!roles.includes("viewer")) return "not-an-operator";
  if (!isCommandAction(action)) return "not-an-operator";
  return COMMAND_ACTIONS[action] === "reads" ? null : `viewer-may-not-${action.replaceAll(".", "-")}`;
}

/** The actions a key holding `roles` may send, in list order. */
export function actionsAllowed(roles: readonly Role[]): CommandAction[] {
  return (Object.keys(COMMAND_ACTIONS) as CommandAction[]).filter((a) => commandRefusal(roles, a) === null);
}

/**
 * A refusal in words, for the operator: the action, what it needs, what this key may send instead,
 * and how to get the right.
 */
export function explainCommandRefusal(roles: readonly Role[], action: string): string {
  const allowed = actionsAllowed(roles);
  const has = roles.length === 0 ? "no roles" : `roles ${roles.join(", ")}`;
  const may = allowed.length === 0 ? "no command at all" : `only ${allowed.join(", ")}`;
  return `${action} needs an operator or admin key; this key has ${has}, so it may send ${may} (an admin grants a role with 'ringctl operator add KEY --role operator')`;
}
