/**
 * Kiln's typed SDK: the client and one typed document per operation of the API
 * (docs/design.md#api), generated from schema.graphql by `npm run sdk`.
 */
export * from './client.js';
export * from './generated.js';
