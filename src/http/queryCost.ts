import {
  GraphQLError,
  Kind,
  getNamedType,
  getNullableType,
  isCompositeType,
  isListType,
  isObjectType,
  isInterfaceType,
  type ASTVisitor,
  type DirectiveNode,
  type FieldNode,
  type GraphQLField,
  type GraphQLNamedType,
  type OperationDefinitionNode,
  type SelectionSetNode,
  type ValidationContext,
  type ValidationRule,
} from 'graphql';
import type { QueryLimits } from '../config.js';
import { DEFAULT_LEAF_BYTES, FILE_LEAVES, LEAF_BYTES, LIST_WEIGHTS, OBJECT_BYTES, type ListWeight } from './queryWeights.js';

/** The worst case of an operation: how many rows (objects and list items) and bytes it may return. */
export interface Cost {
  rows: number;
  bytes: number;
}

const ZERO: Cost = { rows: 0, bytes: 0 };
const add = (a: Cost, b: Cost): Cost => ({ rows: a.rows + b.rows, bytes: a.bytes + b.bytes });
/** `n` items of `each`; none of an unbounded item is nothing (0 x Infinity would be NaN, which passes every comparison). */
const times = (n: number, each: number): number => (n === 0 ? 0 : n * each);

/**
 * The budgets the rule holds operations to: the request limits and the byte cap of one page of
 * logs (a `logs` field never returns more, whatever its `limit`).
 */
export type CostBudget = Pick<QueryLimits, 'maxRows' | 'maxBytes' | 'logPageMaxBytes'>;

/**
 * Computes operations' worst cases over one document. Each fragment is costed once per
 * connection size it is spread under, so a document of fragments spread many times costs linear
 * time; a fragment spread inside itself counts as nothing here (NoFragmentCyclesRule refuses it).
 */
class CostCounter {
  private readonly fragments = new Map<string, Cost>();
  private readonly entered = new Set<string>();
  /** Items of the `oneFile` list being costed (1 outside one): FILE_LEAVES weigh 1/fileShare each. */
  private fileShare = 1;

  constructor(
    private readonly ctx: ValidationContext,
    private readonly logPageMaxBytes: number,
  ) {}

  /** The cost of a selection set on `type`; `edgesSize` is the size of the connection it belongs to. */
  selections(set: SelectionSetNode, type: GraphQLNamedType, edgesSize: number): Cost {
    let cost = ZERO;
    for (const selection of set.selections) {
      if (skipped(selection.directives ?? [])) continue;
      if (selection.kind === Kind.FIELD) {
        cost = add(cost, this.field(selection, type, edgesSize));
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        const on = selection.typeCondition ? this.ctx.getSchema().getType(selection.typeCondition.name.value) : type;
        if (on) cost = add(cost, this.selections(selection.selectionSet, on, edgesSize));
      } else {
        cost = add(cost, this.fragment(selection.name.value, edgesSize));
      }
    }
    return cost;
  }

  private fragment(name: string, edgesSize: number): Cost {
    const key = `${name}@${edgesSize}@${this.fileShare}`;
    const known = this.fragments.get(key);
    if (known) return known;
    const fragment = this.ctx.getFragment(name);
    const on = fragment && this.ctx.getSchema().getType(fragment.typeCondition.name.value);
    if (!fragment || !on || this.entered.has(name)) return ZERO;
    this.entered.add(name);
    const cost = this.selections(fragment.selectionSet, on, edgesSize);
    this.entered.delete(name);
    this.fragments.set(key, cost);
    return cost;
  }

  private field(node: FieldNode, parent: GraphQLNamedType, edgesSize: number): Cost {
    const name = node.name.value;
    // Introspection is bounded by the schema, not by data: exempt, as from the depth limit.
    if (name === '__schema' || name === '__type') return ZERO;
    if (name === '__typename') return { rows: 0, bytes: DEFAULT_LEAF_BYTES };
    const def = isObjectType(parent) || isInterfaceType(parent) ? parent.getFields()[name] : undefined;
    if (!def) return ZERO; // an unknown field: FieldsOnCorrectTypeRule reports it
    const key = `${parent.name}.${name}`;
    const weight = LIST_WEIGHTS[key];
    const size = weight ? sizeOf(weight, node, edgesSize) : isListType(getNullableType(def.type)) ? Number.POSITIVE_INFINITY : 1;
    const connection = weight !== undefined && 'connection' in weight;
    // A connection is one object; the size it asks for applies to its edges.
    const items = connection ? 1 : size;
    const outerShare = this.fileShare;
    if (weight !== undefined && 'oneFile' in weight) this.fileShare = size;
    const item = this.item(node, def, key, connection ? size : 0);
    this.fileShare = outerShare;
    const cost = { rows: times(items, item.rows), bytes: times(items, item.bytes) };
    if (weight !== undefined && 'pageBytes' in weight) cost.bytes = Math.min(cost.bytes, this.logPageMaxBytes);
    return cost;
  }

  /** One item of a field: an object and what it selects, or a scalar (a row when in a list). */
  private item(node: FieldNode, def: GraphQLField<unknown, unknown>, key: string, edgesSize: number): Cost {
    const type = getNamedType(def.type);
    if (isCompositeType(type) && node.selectionSet) {
      const inner = this.selections(node.selectionSet, type, edgesSize);
      return { rows: 1 + inner.rows, bytes: OBJECT_BYTES + inner.bytes };
    }
    const bytes = LEAF_BYTES[key] ?? DEFAULT_LEAF_BYTES;
    return { rows: isListType(getNullableType(def.type)) ? 1 : 0, bytes: FILE_LEAVES.has(key) ? Math.ceil(bytes / this.fileShare) : bytes };
  }
}

/**
 * The length a list field may reach: its argument as written (at most the largest the field
 * accepts), the default when absent, and the largest when it is a variable, since validation
 * runs before variables are known and an operation is validated once for any values.
 */
function sizeOf(weight: ListWeight, node: FieldNode, edgesSize: number): number {
  if ('edges' in weight) return edgesSize;
  if ('fixed' in weight) return weight.fixed;
  const arg = node.arguments?.find((a) => a.name.value === weight.arg);
  if (!arg || arg.value.kind === Kind.NULL) return weight.default;
  if (arg.value.kind === Kind.INT) return Math.max(0, Math.min(Number(arg.value.value), weight.max));
  return weight.max;
}

/** `@skip(if: true)` or `@include(if: false)` written as literals; with a variable, the field counts. */
function skipped(directives: readonly DirectiveNode[]): boolean {
  return directives.some((d) => {
    const cond = d.arguments?.find((a) => a.name.value === 'if')?.value;
    if (cond?.kind !== Kind.BOOLEAN) return false;
    return (d.name.value === 'skip' && cond.value === true) || (d.name.value === 'include' && cond.value === false);
  });
}

const count = new Intl.NumberFormat('en-US');
const mib = (bytes: number) => `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;

/** The refusal of an operation over a budget, naming the budget and the worst case. */
export function costError(cost: Cost, budget: CostBudget, operation?: OperationDefinitionNode): GraphQLError | null {
  if (cost.rows > budget.maxRows) {
    return new GraphQLError(
      `this request may return up to ${count.format(cost.rows)} rows (objects and list items, at the page sizes it asks for); ` +
        `the limit per request is ${count.format(budget.maxRows)} (KILN_QUERY_MAX_ROWS). Ask for smaller pages (first, limit, count) or fewer aliases, and follow the cursor.`,
      { nodes: operation, extensions: { budget: 'KILN_QUERY_MAX_ROWS', worstCase: cost.rows, limit: budget.maxRows } },
    );
  }
  if (cost.bytes > budget.maxBytes) {
    return new GraphQLError(
      `this request may return up to ${mib(cost.bytes)}; the limit per request is ${mib(budget.maxBytes)} (KILN_QUERY_MAX_BYTES). ` +
        'Ask for fewer fields, smaller pages or fewer aliases; read a whole log as text from /api/v1/executions/{id}/log.',
      { nodes: operation, extensions: { budget: 'KILN_QUERY_MAX_BYTES', worstCase: cost.bytes, limit: budget.maxBytes } },
    );
  }
  return null;
}

/**
 * The worst case of each operation of a document, computed from its text alone
 * (docs/design.md#query-cost). Exposed for tests and tools; the rule below is what refuses.
 */
export function operationCosts(ctx: ValidationContext, logPageMaxBytes: number): Array<{ operation: OperationDefinitionNode; cost: Cost }> {
  const costs: Array<{ operation: OperationDefinitionNode; cost: Cost }> = [];
  const counter = new CostCounter(ctx, logPageMaxBytes);
  const schema = ctx.getSchema();
  for (const def of ctx.getDocument().definitions) {
    if (def.kind !== Kind.OPERATION_DEFINITION) continue;
    const root = def.operation === 'query' ? schema.getQueryType() : def.operation === 'mutation' ? schema.getMutationType() : schema.getSubscriptionType();
    if (root) costs.push({ operation: def, cost: counter.selections(def.selectionSet, root, 0) });
  }
  return costs;
}

/**
 * A validation rule refusing every operation whose worst case exceeds the row or byte budget,
 * before anything runs. The same rule serves HTTP (Apollo's validationRules) and graphql-ws
 * (OperationGuard.check).
 */
export function costRule(budget: CostBudget): ValidationRule {
  return (ctx: ValidationContext): ASTVisitor => ({
    Document: {
      leave() {
        for (const { operation, cost } of operationCosts(ctx, budget.logPageMaxBytes)) {
          const error = costError(cost, budget, operation);
          if (error) ctx.reportError(error);
        }
      },
    },
  });
}
