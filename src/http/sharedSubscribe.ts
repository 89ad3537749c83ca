import { createSourceEventStream, execute, print, type ExecutionArgs, type ExecutionResult } from 'graphql';
import type { Context } from '../resolvers/context.js';
import { compileLogChunkProjection } from './logChunkProjection.js';

type Result = ExecutionResult | Promise<ExecutionResult>;

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value;
}

/** What makes two subscriptions' results for one event identical: caller, document, variables. */
function subscriptionKey(args: ExecutionArgs): string {
  const principal = (args.contextValue as Context | undefined)?.principal.sub ?? '';
  const source = args.document.loc?.source.body ?? print(args.document);
  return `${principal}\u0000${args.operationName ?? ''}\u0000${source}\u0000${JSON.stringify(args.variableValues ?? {})}`;
}

async function* mapEvents(source: AsyncIterable<unknown>, map: (event: unknown) => Result): AsyncGenerator<ExecutionResult> {
  for await (const event of source) {
    const result = map(event);
    // Most results are ready at once; an extra await per line is measurable at 10,000 lines/s.
    yield result instanceof Promise ? await result : result;
  }
}

/**
 * graphql-js's `subscribe`, except that plain log-line subscriptions are projected directly
 * (logChunkProjection.ts) and that the result of one event for one subscription shape is
 * computed once and shared: a thousand sockets following one build with the same subscription
 * cost one execution per log line, not a thousand. Events are the objects the event hub hands to
 * every subscriber (a log line of the shared tail, an execution snapshot), so a WeakMap keyed by
 * the event forgets the results with the event. Subscriptions with another caller, document or
 * variables compute their own.
 */
export function sharedResultSubscribe(): (args: ExecutionArgs) => Promise<AsyncGenerator<ExecutionResult> | ExecutionResult> {
  const results = new WeakMap<object, Map<string, Result>>();
  return async (args) => {
    const source = await createSourceEventStream(args);
    if (!isAsyncIterable(source)) return source as ExecutionResult;
    const key = subscriptionKey(args);
    const projection = compileLogChunkProjection(args.schema, args.document, args.operationName);
    const run = (event: unknown): Result => {
      if (projection !== null) {
        try {
          return projection(event as Record<string, unknown>);
        } catch {
          // graphql-js says what is wrong with this event, as an error in the result.
        }
      }
      return execute({ ...args, rootValue: event });
    };
    return mapEvents(source, (event) => {
      if (typeof event !== 'object' || event === null) return run(event);
      let byKey = results.get(event);
      if (byKey === undefined) results.set(event, (byKey = new Map()));
      let result = byKey.get(key);
      if (result === undefined) byKey.set(key, (result = run(event)));
      return result;
    });
  };
}
