import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FilesystemStore } from '../src/storage/filesystem.js';
import { S3Store } from '../src/storage/s3.js';
import { requireDocker } from './helpers/docker.js';
import { startTestKiln, type TestKiln } from './helpers/kiln.js';
import { jobYaml, runJob } from './helpers/runner.js';
import { startS3rver, type S3rverHandle, s3StoreOn } from './helpers/s3.js';

const BUILD = [
  'mkdir -p bin && echo "binary for $(uname -m)" > bin/app && echo "all 3 tests passed" > report.txt',
];
const ARTIFACTS = 'artifacts: [report.txt, bin/, missing/coverage.out]';

/** The tar archive inside a downloaded tar.gz, as text (file contents are stored raw in a tar). */
function tarText(body: ArrayBuffer | Buffer): string {
  return gunzipSync(Buffer.from(body as ArrayBuffer)).toString('latin1');
}

describe('artifacts (real Docker engine)', () => {
  beforeAll(async () => {
    await requireDocker();
  });

  describe('stored in S3 (s3rver)', () => {
    let s3: S3rverHandle;
    let store: S3Store;
    let k: TestKiln;
    let token: string;

    beforeAll(async () => {
      s3 = await startS3rver();
      store = s3StoreOn(s3);
      k = await startTestKiln({ store, env: { KILN_MAX_ARTIFACT_BYTES: '4096' } });
      token = await k.token('maker');
    });

    afterAll(async () => {
      await k?.stop();
      store?.close();
      await s3?.stop();
    });

    it('copies each listed path out of the container as one tar.gz, listed with its size and a presigned URL', async () => {
      const e = await runJob(k, token, jobYaml('Produces', BUILD, [ARTIFACTS]));
      expect(e.status, e.error ?? '').toBe('SUCCEEDED');
      expect(e.artifacts.map((a) => a.path)).toEqual(['report.txt', 'bin/']);
      for (const artifact of e.artifacts) {
        expect(artifact.size).toBeGreaterThan(20);
        expect(artifact.url).toMatch(new RegExp(`^${s3.endpoint}/${s3.bucket}/executions/${e.id}/artifacts/.*\\.tar\\.gz\\?.*X-Amz-Signature=`));
      }
      const report = await fetch(e.artifacts[0]!.url!);
      expect(report.status).toBe(200);
      const reportBody = await report.arrayBuffer();
      expect(reportBody.byteLength).toBe(e.artifacts[0]!.size);
      expect(tarText(reportBody)).toContain('all 3 tests passed');
      const bin = tarText(await (await fetch(e.artifacts[1]!.url!)).arrayBuffer());
      expect(bin).toContain('bin/app');
      expect(bin).toContain('binary for x86_64');
      // A path the build did not make is a warning, not a failure.
      expect(e.logs.some((l) => l.stream === 'SYSTEM' && l.text === 'artifact "missing/coverage.out": no such file or directory in /workspace; skipped')).toBe(true);
    });

    it('keeps the artifacts of a build whose step failed, and its exit code', async () => {
      const e = await runJob(k, token, jobYaml('FailsButReports', [...BUILD, 'exit 4'], [ARTIFACTS]));
      expect(e.status).toBe('FAILED');
      expect(e.exitCode).toBe(4);
      expect(e.artifacts.map((a) => a.path)).toEqual(['report.txt', 'bin/']);
    });

    it('fails the execution when an artifact is over the size limit, saying so', async () => {
      const e = await runJob(k, token, jobYaml('TooBig', ['head -c 100000 /dev/urandom > big.bin'], ['artifacts: [big.bin]']));
      expect(e.status).toBe('FAILED');
      expect(e.error).toBe('artifact "big.bin" is larger than 4096 bytes compressed (KILN_MAX_ARTIFACT_BYTES)');
      expect(e.artifacts).toEqual([]);
    });
  });

  describe('stored in the local directory', () => {
    let dir: string;
    let k: TestKiln;
    let token: string;

    beforeAll(async () => {
      dir = await mkdtemp(path.join(tmpdir(), 'kiln-artifacts-'));
      k = await startTestKiln({ store: new FilesystemStore(dir) });
      token = await k.token('local');
    });

    afterAll(async () => {
      await k?.stop();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it('serves each artifact through Kiln, to its owner only', async () => {
      const e = await runJob(k, token, jobYaml('LocalArtifacts', BUILD, [ARTIFACTS]));
      expect(e.status, e.error ?? '').toBe('SUCCEEDED');
      expect(e.artifacts[0]!.url).toBe(`/api/v1/executions/${e.id}/artifacts/report.txt`);
      const res = await fetch(`${k.url}${e.artifacts[0]!.url}`, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('application/gzip');
      expect(tarText(await res.arrayBuffer())).toContain('all 3 tests passed');
      const other = await fetch(`${k.url}${e.artifacts[0]!.url}`, { headers: { authorization: `Bearer ${await k.token('mallory')}` } });
      expect(other.status).toBe(404);
      const none = await fetch(`${k.url}/api/v1/executions/${e.id}/artifacts/nope.txt`, { headers: { authorization: `Bearer ${token}` } });
      expect(none.status).toBe(404);
    });
  });
});
