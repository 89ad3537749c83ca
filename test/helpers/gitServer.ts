import type Dockerode from 'dockerode';
import { startGitServer as startServer, type GitServer, type SshServerKeys } from '../../bench/lib/gitServer.js';
import { GIT_TEST_IMAGE, TEST_LABEL } from './docker.js';

/** The git server of the checkout tests: bench/lib/gitServer.ts with the git test image and this test process's label. */
export { hostGit, makeGitBomb, type GitServer, type SshServerKeys } from '../../bench/lib/gitServer.js';

export function startGitServer(docker: Dockerode, reposDir: string, ssh?: SshServerKeys): Promise<GitServer> {
  return startServer(docker, reposDir, { image: GIT_TEST_IMAGE, prefix: 'kiln-test', labels: { [TEST_LABEL]: String(process.pid) }, ssh });
}
