import { Kind, type FieldNode, type GraphQLResolveInfo, type SelectionSetNode } from 'graphql';

/**
 * Whether the operation selects `path` (field names, aliases aside) below the field being
 * resolved, through fragments and inline fragments. Lets a list read what its rows' fields will
 * need in the same statement. `@skip`/`@include` are not evaluated: a skipped field counts as
 * selected, which costs a read nobody shows, never a missing value.
 */
export function selects(info: GraphQLResolveInfo, path: readonly string[]): boolean {
  let level: readonly FieldNode[] = info.fieldNodes;
  for (const name of path) {
    const next: FieldNode[] = [];
    for (const field of level) fieldsNamed(field.selectionSet, name, info, next);
    if (next.length === 0) return false;
    level = next;
  }
  return true;
}

function fieldsNamed(set: SelectionSetNode | undefined, name: string, info: GraphQLResolveInfo, out: FieldNode[]): void {
  for (const selection of set?.selections ?? []) {
    if (selection.kind === Kind.FIELD) {
      if (selection.name.value === name) out.push(selection);
    } else if (selection.kind === Kind.INLINE_FRAGMENT) {
      fieldsNamed(selection.selectionSet, name, info, out);
    } else {
      // Validation has refused fragment cycles before any resolver runs.
      fieldsNamed(info.fragments[selection.name.value]?.selectionSet, name, info, out);
    }
  }
}
