import type { Page } from '../services/paging.js';

/** A service page as a Relay connection. */
export function toConnection<T>(page: Page<T>): { edges: Array<{ cursor: string; node: T }>; pageInfo: { hasNextPage: boolean; endCursor: string | null } } {
  return { edges: page.items, pageInfo: { hasNextPage: page.hasNextPage, endCursor: page.endCursor } };
}
