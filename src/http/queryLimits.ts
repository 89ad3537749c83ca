import { maxAliasesRule } from '@escape.tech/graphql-armor-max-aliases';
import { maxDepthRule } from '@escape.tech/graphql-armor-max-depth';
import { maxDirectivesRule } from '@escape.tech/graphql-armor-max-directives';
import {
  GraphQLError,
  NoSchemaIntrospectionCustomRule,
  parse,
  specifiedRules,
  validate,
  type DocumentNode,
  type GraphQLSchema,
  type ParseOptions,
  type ValidationContext,
  type ValidationRule,
} from 'graphql';
import express, { type ErrorRequestHandler, type RequestHandler } from 'express';
import type { QueryLimits } from '../config.js';
import { costRule } from './queryCost.js';

/**
 * Largest GraphQL request body over HTTP, and largest message on the socket. An operation is a
 * few kilobytes; the biggest legitimate variable is a job file (256 KiB, a little more once
 * JSON-escaped).
 */
export const MAX_GRAPHQL_BODY_BYTES = 1024 * 1024;

/**
 * The JSON body parser of `/graphql`, and what it answers when it refuses a body: an oversized
 * one is a 413, malformed JSON a 400, both with a GraphQL-shaped JSON error (Express's default
 * would be an HTML page). The refusal comes before any operation runs, so nothing is stored.
 * `onBody` learns the size of each body read, after decompression (RateLimiter.chargeBody).
 */
export function graphqlBody(onBody?: (req: object, bytes: number) => void): [RequestHandler, ErrorRequestHandler] {
  const refuse: ErrorRequestHandler = (err, _req, res, next) => {
    const e = err as { type?: string; status?: number; message?: string };
    if (e.type === 'entity.too.large') {
      const message = `the request body is larger than ${MAX_GRAPHQL_BODY_BYTES} bytes (1 MiB), the limit of a GraphQL request`;
      res.status(413).json({ errors: [{ message, extensions: { code: 'PAYLOAD_TOO_LARGE', limitBytes: MAX_GRAPHQL_BODY_BYTES } }] });
    } else if (typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
      res.status(e.status).json({ errors: [{ message: `bad request body: ${e.message ?? 'unreadable'}`, extensions: { code: 'BAD_REQUEST' } }] });
    } else {
      next(err);
    }
  };
  const verify = onBody && ((req: object, _res: unknown, body: Buffer) => onBody(req, body.length));
  return [express.json({ limit: MAX_GRAPHQL_BODY_BYTES, ...(verify ? { verify } : {}) }), refuse];
}

/** The limits of one server, as both transports apply them. */
export interface OperationGuard {
  /** For graphql-js `parse` (Apollo's `parseOptions`): refuses oversized documents while lexing. */
  parseOptions: ParseOptions;
  /** Validation rules on top of graphql-js's own (Apollo's `validationRules`). */
  rules: ValidationRule[];
  /**
   * Parses and validates an operation the way Apollo does over HTTP, for the WebSocket
   * transport: the document, or the errors to answer with (codes as Apollo sets them).
   */
  check(schema: GraphQLSchema, query: string): { document: DocumentNode } | { errors: GraphQLError[] };
}

/**
 * graphql-armor's rules throw by default, which aborts validation with an exception; reported
 * instead, they come back as ordinary validation errors next to graphql-js's own.
 */
const report = { propagateOnRejection: false, onReject: [(ctx: ValidationContext | null, err: GraphQLError) => ctx?.reportError(err)] };

/**
 * Depth, alias, directive and token limits (graphql-armor and graphql-js), Kiln's cost rule
 * (rows and bytes at worst: queryCost.ts), plus the introspection switch, built once and applied
 * identically over HTTP and over the socket. Introspection itself is exempt from the depth and
 * cost limits (its type query nests deeply).
 */
export function operationGuard(limits: QueryLimits, opts: { introspection: boolean }): OperationGuard {
  const rules: ValidationRule[] = [
    maxDepthRule({ n: limits.maxDepth, ...report }),
    maxAliasesRule({ n: limits.maxAliases, ...report }),
    maxDirectivesRule({ n: limits.maxDirectives, ...report }),
  ] as ValidationRule[];
  rules.push(costRule(limits));
  if (!opts.introspection) rules.push(NoSchemaIntrospectionCustomRule);
  const parseOptions: ParseOptions = { maxTokens: limits.maxTokens };
  const allRules = [...specifiedRules, ...rules];
  return {
    parseOptions,
    rules,
    check(schema, query) {
      let document: DocumentNode;
      try {
        document = parse(query, parseOptions);
      } catch (err) {
        const e = err as GraphQLError;
        return { errors: [new GraphQLError(e.message, { nodes: e.nodes, source: e.source, positions: e.positions, extensions: { code: 'GRAPHQL_PARSE_FAILED' } })] };
      }
      const errors = validate(schema, document, allRules);
      if (errors.length > 0) {
        return {
          errors: errors.map(
            (e) => new GraphQLError(e.message, { nodes: e.nodes, source: e.source, positions: e.positions, extensions: { ...e.extensions, code: 'GRAPHQL_VALIDATION_FAILED' } }),
          ),
        };
      }
      return { document };
    },
  };
}
