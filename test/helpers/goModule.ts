import type Dockerode from 'dockerode';
import { GO_TEST_IMAGE } from './docker.js';

/** The fixture Go module and its local module proxy (issue 13): bench/lib/goModule.ts, shared with `npm run bench -- build`. */
export {
  copyGoModule,
  GO_CACHE,
  GO_DEPENDENCY,
  GO_JOB_ENV,
  GO_MODULE_PATH,
  GO_SEED_STEPS,
  goJobYaml,
  makeGoRepository,
  PROXY_DIR_IN_MODULE,
  writeGoProxy,
  type GoJobOptions,
  type GoModuleOptions,
} from '../../bench/lib/goModule.js';

/** Throws unless the engine holds GO_TEST_IMAGE (requireDocker checks the busybox and git images only). */
export async function requireGoImage(docker: Dockerode): Promise<void> {
  try {
    await docker.getImage(GO_TEST_IMAGE).inspect();
  } catch (err) {
    throw new Error(`the test image ${GO_TEST_IMAGE} is missing: apt-get install -y golang-go, then run scripts/build-test-images.sh`, { cause: err });
  }
}
