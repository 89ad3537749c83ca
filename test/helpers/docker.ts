import Dockerode from 'dockerode';
import type { ContainerConfig, OutputSink, OutputStream } from '../../src/runner/types.js';

/** The image scripts/build-test-images.sh builds: static busybox, /workspace, /tmp, no registry. */
export const TEST_IMAGE = 'kiln-test/busybox:latest';

/** Like TEST_IMAGE, but its user is `builder` (1000:1000), who owns /workspace and /home/builder. */
export const NONROOT_TEST_IMAGE = 'kiln-test/busybox-nonroot:latest';

/** Debian's git, with busybox and ssh (scripts/build-test-images.sh): the checkout image of the tests (KILN_GIT_IMAGE). */
export const GIT_TEST_IMAGE = 'kiln-test/git:latest';

/**
 * This machine's PostgreSQL binaries on busybox (scripts/build-test-images.sh): its entrypoint runs
 * initdb then postgres as the user `postgres`, data in /tmp/pgdata, trust auth on its network.
 */
export const POSTGRES_TEST_IMAGE = 'kiln-test/postgres:latest';

/** Debian's Go toolchain with busybox (scripts/build-test-images.sh), for the fixture module test/fixtures/go/hello. */
export const GO_TEST_IMAGE = 'kiln-test/go:latest';

/** Every container a test creates carries this label, so leftovers can be found and removed. */
export const TEST_LABEL = 'kiln.test';

/**
 * Returns a client for the engine the tests use (dockerode defaults: DOCKER_HOST, else the
 * local socket) once it answers and holds TEST_IMAGE. Throws otherwise: a test that needs
 * Docker fails when Docker is missing, it never skips.
 */
export async function requireDocker(): Promise<Dockerode> {
  const docker = new Dockerode();
  const where = process.env.DOCKER_HOST ?? 'the local socket /var/run/docker.sock';
  try {
    await (docker.ping.bind(docker) as (opts: { abortSignal: AbortSignal }) => Promise<unknown>)({
      abortSignal: AbortSignal.timeout(5_000),
    });
  } catch (err) {
    throw new Error(
      `these tests need a Docker engine, and none answers at ${where}: ${(err as Error).message}. ` +
        'Start one (see .ci/run: dockerd --bridge=none --iptables=false --ip6tables=false).',
      { cause: err },
    );
  }
  for (const image of [TEST_IMAGE, NONROOT_TEST_IMAGE, GIT_TEST_IMAGE]) {
    try {
      await docker.getImage(image).inspect();
    } catch (err) {
      throw new Error(`the test image ${image} is missing: run scripts/build-test-images.sh`, { cause: err });
    }
  }
  return docker;
}

/** A ContainerConfig for TEST_IMAGE with network none and small limits; `overrides` win. */
export function testContainerConfig(overrides: Partial<ContainerConfig> = {}): ContainerConfig {
  return {
    image: TEST_IMAGE,
    env: {},
    // The value names the test process, so that one file's clean-up never removes the containers of
    // a file running beside it (see removeTestContainers).
    labels: { [TEST_LABEL]: String(process.pid) },
    network: 'none',
    workdir: '/workspace',
    memoryBytes: 256 * 1024 * 1024,
    cpus: 1,
    ...overrides,
  };
}

/** Collects what an exec delivers, per stream, in arrival order. */
export interface CapturedOutput {
  sink: OutputSink;
  chunks: Array<{ stream: OutputStream; data: Buffer }>;
  /** Everything one stream delivered, decoded once at the end (so split characters survive). */
  text(stream: OutputStream): string;
}

export function captureOutput(): CapturedOutput {
  const chunks: CapturedOutput['chunks'] = [];
  return {
    chunks,
    sink: (stream, data) => {
      chunks.push({ stream, data });
    },
    text: (stream) =>
      Buffer.concat(chunks.filter((c) => c.stream === stream).map((c) => c.data)).toString('utf8'),
  };
}

/** Whether a process with this pid is alive (signal 0 probes without signalling). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Force-removes the containers made by testContainerConfig in this test process, and those of test
 * processes that are gone (leftovers of an interrupted run). Never another live process's: test
 * files run two at a time, and removing a neighbour's containers mid-test breaks it.
 */
export async function removeTestContainers(docker: Dockerode): Promise<void> {
  const containers = await docker.listContainers({ all: true, filters: { label: [TEST_LABEL] } });
  await Promise.all(
    containers
      .filter((c) => {
        const pid = Number(c.Labels[TEST_LABEL]);
        return Number.isInteger(pid) && pid > 0 && (pid === process.pid || !alive(pid));
      })
      .map((c) =>
        docker
          .getContainer(c.Id)
          .remove({ force: true, v: true })
          .catch(() => undefined),
      ),
  );
}
