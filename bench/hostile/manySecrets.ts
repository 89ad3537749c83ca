import { randomBytes } from 'node:crypto';
import { gql, refusal, Tally } from './api.js';
import { attackerBuildEnd, cancelAttackerBuild } from './executions.js';
import type { Attack, HostileContext } from './context.js';

/**
 * Attack 5 (issue 11, item 6; review M5): a build of A's that lists as many ~1 KiB secrets as
 * the server lets A store and name in one job, and prints `mb` MB of base64 output, all of which
 * the worker must mask. Secrets are stored SECRETS_PER_REQUEST per request (aliases of
 * setSecret) until the server refuses one; the job then names all that were stored, or half
 * as many each time its file is refused.
 */

const SECRETS_PER_REQUEST = 10;

async function storeSecrets(ctx: HostileContext, wanted: number): Promise<{ stored: number; refused: string | null }> {
  let stored = 0;
  while (stored < wanted) {
    const batch = Array.from({ length: Math.min(SECRETS_PER_REQUEST, wanted - stored) }, (_, i) => stored + i + 1);
    const fields = batch.map((n, i) => `s${i}: setSecret(name: "HOSTILE_${n}", value: $v${i}) { name }`).join(' ');
    const variables = Object.fromEntries(batch.map((_, i) => [`v${i}`, randomBytes(768).toString('base64')]));
    const answer = await gql(ctx.url, ctx.a.token, `mutation(${batch.map((_, i) => `$v${i}: String!`).join(', ')}) { ${fields} }`, variables);
    const why = refusal(answer);
    if (why !== null) return { stored, refused: why };
    stored += batch.length;
  }
  return { stored, refused: null };
}

function secretsJob(names: number, mb: number): string {
  const list = Array.from({ length: names }, (_, i) => `HOSTILE_${i + 1}`).join(', ');
  const bytes = Math.round((mb * 1_000_000 * 3) / 4 / 1.013); // base64 adds 1/3 and a newline every 76 characters
  return `jobs:\n  - name: ManySecrets\n    secrets: [${list}]\n    steps:\n      - name: print\n        run: "head -c ${bytes} /dev/urandom | base64"\n`;
}

export function manySecretsAttack(opts: { secrets: number; mb: number }): Attack {
  let executionId: string | null = null;
  let stored = { stored: 0, refused: null as string | null };
  return {
    label: 'many secrets',
    name: `a build with ${opts.secrets} secrets of 1 KiB printing ${opts.mb} MB`,
    async prepare(ctx) {
      stored = await storeSecrets(ctx, opts.secrets);
    },
    async run(ctx, signal) {
      const tally = new Tally();
      if (stored.refused) tally.refuse(`setSecret #${stored.stored + 1}: ${stored.refused}`);
      const notes = [`${stored.stored} secrets stored`];
      for (let names = stored.stored; names > 0 && executionId === null && !signal.aborted; names = Math.floor(names / 2)) {
        const answer = await tally.time(gql(ctx.url, ctx.a.token, 'mutation($s: String!) { submitJob(spec: $s) { jobs { lastExecution { id } } } }', { s: secretsJob(names, opts.mb) }, signal));
        const jobs = (answer?.body?.data as { submitJob?: { jobs: Array<{ lastExecution: { id: string } | null }> } } | undefined)?.submitJob?.jobs;
        executionId = jobs?.[0]?.lastExecution?.id ?? null;
        if (executionId) notes.push(`the job names ${names}`);
      }
      if (executionId) notes.push(await attackerBuildEnd(ctx, executionId, signal));
      return { tally, notes };
    },
    async cleanup(ctx) {
      await cancelAttackerBuild(ctx, executionId);
    },
  };
}
