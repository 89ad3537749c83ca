import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Dockerode from 'dockerode';
import { makeGitBomb, startGitServer } from '../lib/gitServer.js';
import { refusal, Tally } from './api.js';
import type { Attack } from './context.js';
import { attackerBuildEnd, cancelAttackerBuild, oneOffExecutionId, submitOneOffAnswer } from './executions.js';

/**
 * Attack 6 (issue 11, item 3): a job whose repository is a git bomb (a few KB of trees whose
 * checkout expands to 10^LEVELS files). Before the phases the benchmark serves one itself
 * (startBombServer): `git daemon` in a container of GIT_IMAGE on an internal docker network of
 * its own, which `kiln start` is given as KILN_CHECKOUT_NETWORK, so Kiln's sandboxed checkout
 * (docs/design.md#sandboxed-checkout) fetches it over git:// and nothing leaves the machine.
 * Expected: A's build ends FAILED with "more than N files (KILN_CHECKOUT_MAX_FILES)".
 */

/** The checkout image, which also serves the bomb (scripts/build-test-images.sh builds it). */
export const GIT_IMAGE = 'kiln-test/git:latest';
/** 10^6 files once checked out, as in test/tenant-checkout.test.ts. */
const LEVELS = 6;

/** The bomb's server, or why there is none. */
export interface BombServer {
  /** The bomb's git:// URL on the server's network; null when it could not be served. */
  url: string | null;
  /** "not measured: ..." when `url` is null. */
  notMeasured?: string;
  /** What `kiln start` needs to fetch it: KILN_GIT_IMAGE, KILN_CHECKOUT_NETWORK, KILN_GIT_PROTOCOLS. */
  env: Record<string, string>;
  /** Removes the server's container and network (after the checkouts on that network are gone). */
  stop(): Promise<void>;
}

/** Whether the engine holds `image`; false only when it answers that it does not. */
async function hasImage(docker: Dockerode, image: string): Promise<boolean> {
  try {
    await docker.getImage(image).inspect();
    return true;
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return false;
    throw err;
  }
}

/** Makes a LEVELS-level bomb and serves it; declines (no server, `notMeasured` set) only when GIT_IMAGE is missing. */
export async function startBombServer(): Promise<BombServer> {
  const docker = new Dockerode();
  if (!(await hasImage(docker, GIT_IMAGE))) {
    return { url: null, notMeasured: `not measured: the image ${GIT_IMAGE} is missing (run scripts/build-test-images.sh)`, env: {}, stop: async () => {} };
  }
  const repos = await mkdtemp(path.join(tmpdir(), 'kiln-bench-bomb-'));
  try {
    makeGitBomb(repos, 'bomb.git', LEVELS);
    const server = await startGitServer(docker, repos, { image: GIT_IMAGE, prefix: 'kiln-bench', labels: { 'kiln.bench': String(process.pid) } });
    return {
      url: server.url('bomb.git'),
      env: { KILN_GIT_IMAGE: GIT_IMAGE, KILN_CHECKOUT_NETWORK: server.network, KILN_GIT_PROTOCOLS: 'https,git' },
      stop: () => server.stop(),
    };
  } finally {
    // The server holds a copy.
    await rm(repos, { recursive: true, force: true });
  }
}

const jobWithRepository = (url: string) => `jobs:\n  - name: GitBomb\n    repository: { url: ${JSON.stringify(url)}, ref: main }\n    steps:\n      - run: "ls | head"\n`;

export function gitBombAttack(bomb: BombServer): Attack {
  let executionId: string | null = null;
  return {
    label: 'git bomb',
    name: `git bomb checkout (${LEVELS} levels: 10^${LEVELS} files${bomb.url ? `, ${bomb.url}` : ''})`,
    async probe() {
      return bomb.url ? null : (bomb.notMeasured ?? 'not measured: no bomb server');
    },
    async run(ctx, signal) {
      const tally = new Tally();
      const answer = await tally.time(submitOneOffAnswer(ctx.url, ctx.a, jobWithRepository(bomb.url!), signal));
      if (!answer) return { tally, requests: '1 job', notes: ["A's submit got no answer"] };
      const refused = refusal(answer);
      if (refused) return { tally, requests: '1 job', notes: [`A's job refused at submit: ${refused}`] };
      executionId = oneOffExecutionId(answer);
      return { tally, requests: '1 job', notes: [await attackerBuildEnd(ctx, executionId, signal)] };
    },
    async cleanup(ctx) {
      await cancelAttackerBuild(ctx, executionId);
    },
  };
}
