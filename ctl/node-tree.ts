/**
 * `ringctl nodes` as a tree: each node under the node that certified it (its certificate's issuer),
 * so that a ring-1 node a seed started and certified shows beneath that seed. Pure.
 */

/** What the tree needs of a row of the `nodes` answer. */
export interface TreeRow {
  readonly id: string;
  readonly certificate: { readonly ring: number; readonly issuer: string } | null;
}

/** A row with its depth below the tree's roots (0 for a root). */
export interface Placed<R> {
  readonly row: R;
  readonly depth: number;
}

/**
 * Rows in depth-first order: roots are the rows whose issuer is not a listed node (ring-0 seeds,
 * certified by the root key; nodes without a certificate), by ring, then id; under each, the nodes
 * it certified, likewise. A row is placed once even if certificates loop.
 */
export function nodeTree<R extends TreeRow>(rows: readonly R[]): Placed<R>[] {
  const ids = new Set(rows.map((r) => r.id));
  const order = (a: R, b: R) =>
    (a.certificate?.ring ?? 9) - (b.certificate?.ring ?? 9) || a.id.localeCompare(b.id);
  const children = new Map<string, R[]>();
  const roots: R[] = [];
  for (const row of rows) {
    const issuer = row.certificate?.issuer;
    if (issuer === undefined || issuer === row.id || !ids.has(issuer)) roots.push(row);
    else children.set(issuer, [...(children.get(issuer) ?? []), row]);
  }
  const out: Placed<R>[] = [];
  const placed = new Set<string>();
  const visit = (row: R, depth: number) => {
    if (placed.has(row.id)) return;
    placed.add(row.id);
    out.push({ row, depth });
    for (const child of (children.get(row.id) ?? []).sort(order)) visit(child, depth + 1);
  };
  for (const root of roots.sort(order)) visit(root, 0);
  // Rows only reachable through a loop of issuers have no root: list them last, at the top level.
  for (const row of [...rows].sort(order)) visit(row, 0);
  return out;
}
