import type { Diagnostic } from './jobfile/types.js';

/**
 * Errors the domain raises on purpose. Each carries the code clients see in
 * `extensions.code`; the mapping to GraphQL and HTTP happens once, at the edge.
 */
export abstract class DomainError extends Error {
  abstract readonly code: string;
  abstract readonly httpStatus: number;
}

export class ValidationError extends DomainError {
  readonly code = 'BAD_USER_INPUT';
  readonly httpStatus = 400;
  constructor(message: string, readonly diagnostics: Diagnostic[] = []) {
    super(message);
    this.name = 'ValidationError';
  }
}

export class UnauthenticatedError extends DomainError {
  readonly code = 'UNAUTHENTICATED';
  readonly httpStatus = 401;
  constructor(message = 'authentication required') {
    super(message);
    this.name = 'UnauthenticatedError';
  }
}

/** Unknown id, or another owner's: the two are indistinguishable on purpose. */
export class NotFoundError extends DomainError {
  readonly code = 'NOT_FOUND';
  readonly httpStatus = 404;
  constructor(what: string, id: string) {
    super(`${what} ${id} not found`);
    this.name = 'NotFoundError';
  }
}

export class ConflictError extends DomainError {
  readonly code = 'CONFLICT';
  readonly httpStatus = 409;
  constructor(message: string) {
    super(message);
    this.name = 'ConflictError';
  }
}

/** Configuration that cannot work; names the variable. */
export class ConfigError extends Error {
  constructor(readonly variable: string, message: string) {
    super(`${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}

/** The caller has too much work waiting already (their own queue is full); retry when it drains. */
export class TooBusyError extends DomainError {
  readonly code = 'RATE_LIMITED';
  readonly httpStatus = 429;
  constructor(message: string) {
    super(message);
    this.name = 'TooBusyError';
  }
}

/** Authenticated, but the request lacks what its kind of credential requires (a session's CSRF token, its own Origin). */
export class ForbiddenError extends DomainError {
  readonly code = 'FORBIDDEN';
  readonly httpStatus = 403;
  constructor(message: string) {
    super(message);
    this.name = 'ForbiddenError';
  }
}
