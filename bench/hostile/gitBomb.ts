import { dataOf, gql, Tally } from './api.js';
import { attackerBuildEnd, cancelAttackerBuild, submitOneOff } from './executions.js';
import type { Attack, HostileContext } from './context.js';

/**
 * Attack 6 (issue 11, item 3): a job whose repository is a git bomb (a small repository whose
 * checkout expands to millions of files). Measured only where the checkout is sandboxed (inside
 * the job's container with its limits): on a server that still clones on the host, the bomb
 * would expand on this shared machine, so the phase declines and says why. The bomb's server
 * is the operator's to provide (`--git-bomb-url`, e.g. a git server on 127.0.0.1).
 */

const VALIDATE = 'query($s: String!) { validateJobSpec(spec: $s) { valid diagnostics { path message } } }';

const jobWithRepository = (url: string) => `jobs:\n  - name: GitBomb\n    repository: { url: ${JSON.stringify(url)} }\n    steps:\n      - run: "ls | head"\n`;

/** The first diagnostic when the server refuses `url` as a repository, null when it accepts it. */
async function refusalOf(ctx: HostileContext, url: string): Promise<string | null> {
  const d = await dataOf<{ validateJobSpec: { valid: boolean; diagnostics: Array<{ path: string; message: string }> } }>(
    await gql(ctx.url, ctx.a.token, VALIDATE, { s: jobWithRepository(url) }),
    'validateJobSpec',
  );
  const first = d.validateJobSpec.diagnostics[0];
  return d.validateJobSpec.valid ? null : `${first?.path}: ${first?.message}`.slice(0, 120);
}

export function gitBombAttack(opts: { url: string }): Attack {
  let executionId: string | null = null;
  return {
    label: 'git bomb',
    name: `git bomb checkout${opts.url ? ` (${opts.url})` : ''}`,
    async probe(ctx) {
      if ((await refusalOf(ctx, '/srv/kiln-bench/no-such-repository')) === null) {
        return 'not measured: the server accepts a local path as repository.url, so its checkout is not sandboxed and a bomb would expand on this host';
      }
      if (!opts.url) return 'not measured: no --git-bomb-url given (a git server on 127.0.0.1 serving a bomb repository)';
      const refused = await refusalOf(ctx, opts.url);
      return refused === null ? null : `not measured: the server refuses ${opts.url}: ${refused}`;
    },
    async run(ctx, signal) {
      const tally = new Tally();
      executionId = await submitOneOff(ctx.url, ctx.a, jobWithRepository(opts.url));
      const notes = [await attackerBuildEnd(ctx, executionId, signal)];
      return { tally, requests: '1 job', notes };
    },
    async cleanup(ctx) {
      await cancelAttackerBuild(ctx, executionId);
    },
  };
}
