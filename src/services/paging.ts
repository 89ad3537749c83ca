import { ValidationError } from '../errors.js';

export const DEFAULT_PAGE = 20;
export const MAX_PAGE = 100;

/** A page of a keyset-paginated list. */
export interface Page<T> {
  items: Array<{ node: T; cursor: string }>;
  hasNextPage: boolean;
  endCursor: string | null;
}

/** Validates `first` (1..MAX_PAGE, default DEFAULT_PAGE). */
export function pageSize(first: number | null | undefined): number {
  if (first === null || first === undefined) return DEFAULT_PAGE;
  if (!Number.isInteger(first) || first < 1 || first > MAX_PAGE) {
    throw new ValidationError(`first must be between 1 and ${MAX_PAGE}, got ${first}`);
  }
  return first;
}

/** Cursors are opaque to clients: base64url of the sort key. */
export function encodeCursor(key: unknown[]): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url');
}

export function decodeCursor(cursor: string, shape: Array<'string' | 'number'>): unknown[] {
  let key: unknown;
  try {
    key = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw new ValidationError('invalid cursor');
  }
  if (!Array.isArray(key) || key.length !== shape.length || key.some((v, i) => typeof v !== shape[i])) {
    throw new ValidationError('invalid cursor');
  }
  return key;
}

/** Builds a page from `size + 1` fetched rows (the extra row only tells whether more exist). */
export function toPage<T>(rows: T[], size: number, keyOf: (row: T) => unknown[]): Page<T> {
  const hasNextPage = rows.length > size;
  const items = rows.slice(0, size).map((node) => ({ node, cursor: encodeCursor(keyOf(node)) }));
  return { items, hasNextPage, endCursor: items.length > 0 ? items[items.length - 1]!.cursor : null };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Ids are UUIDs; anything else cannot name a row, so it is simply not found. */
export function isUuid(id: string): boolean {
  return UUID.test(id);
}
