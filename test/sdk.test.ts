import { readFile } from 'node:fs/promises';
import { generate } from '@graphql-codegen/cli';
import { Kind, type DocumentNode, type OperationDefinitionNode } from 'graphql';
import { describe, expect, it } from 'vitest';
import config from '../codegen.js';
import * as sdk from '@kiln/sdk';

const GENERATED = 'sdk/src/generated.ts';

/** Every root field of the API (docs/design.md#api). */
const CONTRACT = {
  query: ['me', 'job', 'jobs', 'execution', 'executions', 'validateJobSpec', 'schedulePreview', 'secrets'],
  mutation: ['submitJob', 'triggerJob', 'pauseJob', 'resumeJob', 'deleteJob', 'cancelExecution', 'setSecret', 'deleteSecret'],
  subscription: ['executionUpdated', 'executionLogs', 'jobUpdated'],
};

describe('the typed SDK', () => {
  it('is what GraphQL Code Generator makes of schema.graphql and sdk/src/operations (run `npm run sdk` after changing either)', async () => {
    const outputs = await generate({ ...config, cwd: process.cwd() }, false);
    const generated = outputs.find((o: { filename: string; content: string }) => o.filename.endsWith(GENERATED));
    expect(generated, 'codegen.ts generates sdk/src/generated.ts').toBeDefined();
    expect(generated!.content).toBe(await readFile(GENERATED, 'utf8'));
  });

  it('has a typed document for every operation of the API contract', () => {
    const covered: Record<string, Set<string>> = { query: new Set(), mutation: new Set(), subscription: new Set() };
    for (const [name, value] of Object.entries(sdk)) {
      if (!name.endsWith('Document')) continue;
      const doc = value as unknown as DocumentNode;
      for (const def of doc.definitions) {
        if (def.kind !== Kind.OPERATION_DEFINITION) continue;
        const op = def as OperationDefinitionNode;
        for (const sel of op.selectionSet.selections) if (sel.kind === Kind.FIELD) covered[op.operation]!.add(sel.name.value);
      }
    }
    for (const [operation, fields] of Object.entries(CONTRACT)) {
      for (const field of fields) expect(covered[operation]!.has(field), `${operation} ${field}`).toBe(true);
    }
  });
});
