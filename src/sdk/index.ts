/**
 * Kiln's typed SDK: the client and one typed document per operation of the API
 * (DESIGN.md section 5), generated from schema.graphql by `npm run sdk`.
 */
export * from './client.js';
export * from './generated.js';
