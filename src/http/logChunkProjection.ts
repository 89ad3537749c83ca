import {
  getNamedType,
  getNullableType,
  isLeafType,
  Kind,
  type DocumentNode,
  type ExecutionResult,
  type GraphQLLeafType,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type SelectionSetNode,
} from 'graphql';

/**
 * The plain properties of a log line that `LogChunk` exposes as they are (see LogChunkType):
 * the only fields the projection below reads without their resolver.
 */
const PLAIN_FIELDS = new Set(['seq', 'stream', 'step', 'text', 'at']);

interface Leaf {
  key: string;
  field: string;
  type: GraphQLLeafType;
  nullable: boolean;
}

/** Flattens `{ seq text ... on LogChunk { at } }` into leaves; null for anything else. */
function leavesOf(schema: GraphQLSchema, set: SelectionSetNode, leaves: Leaf[]): Leaf[] | null {
  const chunk = schema.getType('LogChunk');
  if (chunk === undefined || !('getFields' in chunk)) return null;
  const fields = chunk.getFields();
  for (const sel of set.selections) {
    if (sel.directives !== undefined && sel.directives.length > 0) return null;
    if (sel.kind === Kind.INLINE_FRAGMENT) {
      if (sel.typeCondition !== undefined && sel.typeCondition.name.value !== 'LogChunk') return null;
      if (leavesOf(schema, sel.selectionSet, leaves) === null) return null;
      continue;
    }
    if (sel.kind !== Kind.FIELD || (sel.arguments?.length ?? 0) > 0 || sel.selectionSet !== undefined) return null;
    const name = sel.name.value;
    const key = sel.alias?.value ?? name;
    if (leaves.some((l) => l.key === key)) return null; // merged fields: leave them to graphql-js
    if (name === '__typename') {
      leaves.push({ key, field: name, type: null as unknown as GraphQLLeafType, nullable: false });
      continue;
    }
    const def = fields[name];
    if (!PLAIN_FIELDS.has(name) || def === undefined) return null;
    const type = getNamedType(def.type);
    if (!isLeafType(type)) return null;
    leaves.push({ key, field: name, type, nullable: getNullableType(def.type) === def.type });
  }
  return leaves;
}

/**
 * For the hot path of live logs: an `executionLogs` subscription whose selection is plain
 * LogChunk fields (aliases and inline fragments allowed, no directives) maps each line to its
 * result directly, serializing each leaf with its own scalar or enum type, exactly as graphql-js
 * would, without re-running variable coercion and field collection for every line. Returns null
 * for any other shape, which then goes through graphql-js's `execute`.
 */
export function compileLogChunkProjection(
  schema: GraphQLSchema,
  document: DocumentNode,
  operationName: string | null | undefined,
): ((line: Record<string, unknown>) => ExecutionResult) | null {
  const operations = document.definitions.filter((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION);
  const operation = operationName ? operations.find((o) => o.name?.value === operationName) : operations.length === 1 ? operations[0] : undefined;
  if (operation === undefined || operation.operation !== 'subscription' || operation.selectionSet.selections.length !== 1) return null;
  const root = operation.selectionSet.selections[0]!;
  if (root.kind !== Kind.FIELD || root.name.value !== 'executionLogs' || (root.directives?.length ?? 0) > 0 || root.selectionSet === undefined) return null;
  const leaves = leavesOf(schema, root.selectionSet, []);
  if (leaves === null) return null;
  const rootKey = root.alias?.value ?? 'executionLogs';
  return (line) => {
    const chunk: Record<string, unknown> = {};
    for (const leaf of leaves) {
      if (leaf.field === '__typename') {
        chunk[leaf.key] = 'LogChunk';
        continue;
      }
      const value = line[leaf.field];
      if (value === null || value === undefined) {
        if (!leaf.nullable) throw new Error(`LogChunk.${leaf.field} is null`);
        chunk[leaf.key] = null;
      } else {
        chunk[leaf.key] = leaf.type.serialize(value);
      }
    }
    return { data: { [rootKey]: chunk } };
  };
}
