import { readFile, readdir } from 'node:fs/promises';
import { buildSchema, getNamedType, getNullableType, isListType, isObjectType, parse, specifiedRules, validate, ValidationContext, TypeInfo, type GraphQLSchema } from 'graphql';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { ConfigError } from '../src/errors.js';
import { costRule, operationCosts, type Cost } from '../src/http/queryCost.js';
import { LIST_WEIGHTS } from '../src/http/queryWeights.js';
import { EIGHT_ALIASES, EXECUTIONS_PAGE, LOGS_PAGE, NESTED, TICKS_PAGE } from './helpers/costQueries.js';

const ROOT = new URL('..', import.meta.url);
const LIMITS = loadConfig({}).queryLimits;

let schema: GraphQLSchema;
beforeAll(async () => {
  schema = buildSchema(await readFile(new URL('schema.graphql', ROOT), 'utf8'));
});

/** The worst case of a document's only operation, as the rule computes it. */
function costOf(query: string): Cost {
  const ctx = new ValidationContext(schema, parse(query), new TypeInfo(schema), () => {});
  const [only, ...rest] = operationCosts(ctx, LIMITS.logPageMaxBytes);
  expect(rest).toEqual([]);
  return only!.cost;
}

/** What the rule (with graphql-js's own rules) answers for a document. */
function refusals(query: string): string[] {
  return validate(schema, parse(query), [...specifiedRules, costRule(LIMITS)]).map((e) => e.message);
}

describe('the cost of a request', () => {
  it('gives every list and connection field of the schema a weight, and only fields that exist', () => {
    const lists: string[] = [];
    for (const type of Object.values(schema.getTypeMap())) {
      if (!isObjectType(type) || type.name.startsWith('__')) continue;
      for (const field of Object.values(type.getFields())) {
        // A connection is a list too: its size argument applies to its edges.
        if (isListType(getNullableType(field.type)) || getNamedType(field.type).name.endsWith('Connection')) lists.push(`${type.name}.${field.name}`);
      }
    }
    expect(lists.filter((key) => LIST_WEIGHTS[key] === undefined)).toEqual([]);
    expect(Object.keys(LIST_WEIGHTS).filter((key) => !lists.includes(key))).toEqual([]);
  });

  it('lets the normal pages through: 100 ticks, 100 executions with their steps, one 10,000-line log page', () => {
    for (const page of [TICKS_PAGE, EXECUTIONS_PAGE, LOGS_PAGE]) expect(refusals(page)).toEqual([]);
    // job + connection + 100 x (edge + tick + execution)
    expect(costOf(TICKS_PAGE).rows).toBe(2 + 100 * 3);
    // connection + pageInfo + 100 x (edge + execution + 100 steps)
    expect(costOf(EXECUTIONS_PAGE).rows).toBe(2 + 100 * (2 + 100));
    expect(costOf(LOGS_PAGE).rows).toBe(1 + 10_000);
    // A page of 10,000 lines of 16 KiB would be 160 MiB: it counts as the page's byte cap.
    expect(costOf(LOGS_PAGE).bytes).toBeLessThan(LIMITS.logPageMaxBytes + 1024);
  });

  it('counts the jobs a submitJob answers as one file between them, not one file each', () => {
    const submit = 'mutation($spec: String!) { submitJob(spec: $spec) { jobs { id name schedule timezone image spec nextRuns(count: 3) } } }';
    expect(refusals(submit)).toEqual([]);
    const { bytes } = costOf(submit);
    // The 1,000 jobs' own texts are at most one 256 KiB file; ids, times and braces come on top.
    expect(bytes).toBeGreaterThan(256 * 1024);
    expect(bytes).toBeLessThan(256 * 1024 + 1000 * 1024);
    // The same fields on a page of 100 jobs from different files weigh a file each.
    expect(costOf('{ jobs(first: 100) { edges { node { spec } } } }').bytes).toBeGreaterThan(100 * 256 * 1024);
  });

  it('refuses 8 aliases of logs(limit: 10000), naming the budget and the worst case', () => {
    expect(costOf(EIGHT_ALIASES).rows).toBe(1 + 8 * 10_000);
    expect(refusals(EIGHT_ALIASES)).toEqual([
      expect.stringMatching(/^this request may return up to 80,001 rows .*; the limit per request is 20,000 \(KILN_QUERY_MAX_ROWS\)/),
    ]);
  });

  it('multiplies nested lists: executions { job { executions { logs } } } is refused', () => {
    // connection + 100 x (edge + execution + job + connection + 100 x (edge + execution + 1000 lines))
    expect(costOf(NESTED).rows).toBe(1 + 100 * (4 + 100 * (2 + 1000)));
    expect(refusals(NESTED)).toEqual([expect.stringMatching(/may return up to 10,020,401 rows.*KILN_QUERY_MAX_ROWS/)]);
  });

  it('counts absent sizes as their defaults, variables as the largest value accepted', () => {
    expect(costOf(`query($id: ID!) { execution(id: $id) { logs { seq } } }`).rows).toBe(1 + 1000);
    expect(costOf(`{ jobs { edges { node { id } } } }`).rows).toBe(1 + 20 * 2);
    expect(costOf(`query($id: ID!, $n: Int) { execution(id: $id) { logs(limit: $n) { seq } } }`).rows).toBe(1 + 10_000);
    expect(costOf(`{ jobs(first: 5) { edges { node { nextRuns(count: 7) } } } }`).rows).toBe(1 + 5 * (2 + 7));
    expect(refusals(`query($id: ID!, $n: Int) { execution(id: $id) { a: logs(limit: $n) { seq } b: logs(limit: $n) { seq } } }`)).toHaveLength(1);
  });

  it('refuses on bytes what fits in rows: four log pages of 2,500 lines', () => {
    const four = `query($id: ID!) { execution(id: $id) { ${Array.from({ length: 4 }, (_, i) => `a${i}: logs(limit: 2500) { text }`).join(' ')} } }`;
    expect(costOf(four).rows).toBeLessThanOrEqual(LIMITS.maxRows);
    expect(refusals(four)).toEqual([expect.stringMatching(/may return up to 32\.\d MiB; the limit per request is 32\.0 MiB \(KILN_QUERY_MAX_BYTES\)/)]);
  });

  it('costs fragments as what they select, and a fragment spread thousands of times in linear time', () => {
    const viaFragment = `query($id: ID!) { execution(id: $id) { ...L } } fragment L on Execution { a: logs(limit: 10000) { text } b: logs(limit: 10000) { text } }`;
    expect(costOf(viaFragment)).toEqual(costOf(`query($id: ID!) { execution(id: $id) { a: logs(limit: 10000) { text } b: logs(limit: 10000) { text } } }`));
    // F9 spreads F8 ten times, and so on down: 10^9 evaluations if each spread were costed anew.
    const levels = Array.from({ length: 9 }, (_, i) => `fragment F${i + 1} on Job { ${Array.from({ length: 10 }, (_, j) => `j${j}: lastExecution { job { ...F${i} } }`).join(' ')} }`);
    const bomb = `query($id: ID!) { job(id: $id) { ...F9 } } fragment F0 on Job { id } ${levels.join(' ')}`;
    const t0 = performance.now();
    const cost = costOf(bomb);
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(cost.rows).toBeGreaterThan(1e9);
  });

  it('passes every operation of the typed SDK', async () => {
    const dir = new URL('sdk/src/operations/', ROOT);
    const files = (await readdir(dir)).filter((f) => f.endsWith('.graphql'));
    const document = (await Promise.all(files.map((f) => readFile(new URL(f, dir), 'utf8')))).join('\n');
    expect(validate(schema, parse(document), [costRule(LIMITS)])).toEqual([]);
    const ctx = new ValidationContext(schema, parse(document), new TypeInfo(schema), () => {});
    expect(operationCosts(ctx, LIMITS.logPageMaxBytes).length).toBeGreaterThan(10);
  });

  it('reads its budgets from the environment and refuses the retired cost setting', () => {
    const limits = loadConfig({ KILN_QUERY_MAX_ROWS: '500', KILN_QUERY_MAX_BYTES: '2097152', KILN_LOG_PAGE_MAX_BYTES: '1048576' }).queryLimits;
    expect(limits).toMatchObject({ maxRows: 500, maxBytes: 2 * 1024 * 1024, logPageMaxBytes: 1024 * 1024 });
    expect(() => loadConfig({ KILN_GRAPHQL_MAX_COST: '5000' })).toThrow(ConfigError);
    expect(() => loadConfig({ KILN_QUERY_MAX_BYTES: '2097152', KILN_LOG_PAGE_MAX_BYTES: '4194304' })).toThrow(/KILN_LOG_PAGE_MAX_BYTES.*must not exceed KILN_QUERY_MAX_BYTES/);
  });
});
