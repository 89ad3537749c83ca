/** Outcome of parsing user text: the value, or a message that says what is wrong. */
export type ParseResult<T> = { ok: true; value: T } | { ok: false; error: string };
