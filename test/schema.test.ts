import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { printKilnSchema } from '../src/resolvers/schema.js';

describe('schema.graphql', () => {
  it('matches the schema the code builds (run `npm run schema` after changing the API)', async () => {
    const committed = await readFile(new URL('../schema.graphql', import.meta.url), 'utf8');
    expect(await printKilnSchema()).toBe(committed);
  });

  it('has every Query and Mutation field of the contract', async () => {
    const sdl = await printKilnSchema();
    for (const field of [
      'me: User!', 'job(id: ID!): Job', 'jobs(after: String, first: Int): JobConnection!', 'execution(id: ID!): Execution',
      'executions(after: String, first: Int, jobId: ID, status: ExecutionStatus): ExecutionConnection!',
      'validateJobSpec(spec: String!): ValidationResult!', 'schedulePreview(count: Int, schedule: String!, timezone: String): [DateTime!]!',
      'submitJob(spec: String!): SubmitJobPayload!', 'triggerJob(id: ID!): Execution!', 'pauseJob(id: ID!): Job!', 'resumeJob(id: ID!): Job!',
      'deleteJob(id: ID!): Boolean!', 'cancelExecution(id: ID!): Execution!',
    ]) {
      expect(sdl).toContain(field);
    }
  });
});
