import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import S3rver from 's3rver';

/** The fixed key pair s3rver checks signatures against. */
export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

/** A running s3rver with one empty bucket; its data lives in a temporary directory. */
export interface S3rverHandle {
  /** `http://127.0.0.1:<port>` */
  endpoint: string;
  bucket: string;
  port: number;
  credentials: typeof S3RVER_CREDENTIALS;
  /** Stops the server and removes its directory; safe to call twice. */
  stop(): Promise<void>;
}

/** Starts s3rver on 127.0.0.1, on a free port, silent. Changes no global state. */
export async function startS3rver(bucket = 'kiln-test'): Promise<S3rverHandle> {
  const directory = await mkdtemp(path.join(tmpdir(), 'kiln-s3rver-'));
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory,
    configureBuckets: [{ name: bucket, configs: [] }],
  });
  let address;
  try {
    address = await server.run();
  } catch (err) {
    await rm(directory, { recursive: true, force: true });
    throw err;
  }
  let stopped: Promise<void> | undefined;
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    bucket,
    port: address.port,
    credentials: S3RVER_CREDENTIALS,
    stop() {
      stopped ??= server.close().finally(() => rm(directory, { recursive: true, force: true }));
      return stopped;
    },
  };
}
