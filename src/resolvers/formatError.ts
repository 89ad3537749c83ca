import type { GraphQLFormattedError } from 'graphql';
import { unwrapResolverError } from '@apollo/server/errors';
import { DomainError, ValidationError } from '../errors.js';
import { databaseUnavailable, UNAVAILABLE_MESSAGE, UNAVAILABLE_RETRY_AFTER_S } from '../unavailable.js';

/** Codes Apollo and graphql-js produce themselves, passed through unchanged. */
const PASS_THROUGH = new Set(['GRAPHQL_PARSE_FAILED', 'GRAPHQL_VALIDATION_FAILED', 'BAD_USER_INPUT', 'BAD_REQUEST', 'PERSISTED_QUERY_NOT_FOUND', 'OPERATION_RESOLUTION_FAILURE', 'UNAUTHENTICATED', 'FORBIDDEN', 'RATE_LIMITED']);

/**
 * The one place domain errors become GraphQL errors: each DomainError's code goes to
 * `extensions.code` (with `diagnostics` for invalid job files); anything unexpected is
 * SERVICE_UNAVAILABLE when Postgres could not be reached (retry), and anything else unexpected is
 * INTERNAL_SERVER_ERROR with its details withheld from the client.
 */
export function formatError(formatted: GraphQLFormattedError, error: unknown, log: (m: string) => void = () => {}): GraphQLFormattedError {
  const original = unwrapResolverError(error);
  if (original instanceof DomainError) {
    return {
      message: original.message,
      locations: formatted.locations,
      path: formatted.path,
      extensions: {
        code: original.code,
        ...(original instanceof ValidationError && original.diagnostics.length > 0 ? { diagnostics: original.diagnostics } : {}),
      },
    };
  }
  const code = formatted.extensions?.code;
  if (typeof code === 'string' && PASS_THROUGH.has(code)) {
    const { stacktrace: _drop, ...extensions } = formatted.extensions ?? {};
    return { ...formatted, extensions };
  }
  if (databaseUnavailable(original)) {
    return { message: UNAVAILABLE_MESSAGE, locations: formatted.locations, path: formatted.path, extensions: { code: 'SERVICE_UNAVAILABLE', retryAfterSeconds: UNAVAILABLE_RETRY_AFTER_S } };
  }
  log(`internal error: ${original instanceof Error ? (original.stack ?? original.message) : String(original)}`);
  return { message: 'internal server error', locations: formatted.locations, path: formatted.path, extensions: { code: 'INTERNAL_SERVER_ERROR' } };
}
