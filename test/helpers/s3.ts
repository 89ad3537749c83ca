import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import S3rver from 's3rver';
import { S3Store } from '../../src/storage/s3.js';

/** The fixed key pair s3rver checks signatures against. */
export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

/** One object write s3rver reported: `ObjectCreated:Put` for a single PUT, `ObjectCreated:Post` for a completed multipart upload. */
export interface S3WriteEvent {
  eventName: string;
  key: string;
}

/** A running s3rver with one empty bucket; its data lives in a temporary directory. */
export interface S3rverHandle {
  /** `http://127.0.0.1:<port>` */
  endpoint: string;
  bucket: string;
  port: number;
  credentials: typeof S3RVER_CREDENTIALS;
  /** Every object write so far, in order (from s3rver's own event stream). */
  events: S3WriteEvent[];
  /** Stops the server but keeps its data, as an outage would; `resume` brings it back on the same port. */
  pause(): Promise<void>;
  resume(): Promise<void>;
  /** Stops the server and removes its directory; safe to call twice. */
  stop(): Promise<void>;
}

/** Starts s3rver on 127.0.0.1, on a free port, silent. Changes no global state. */
export async function startS3rver(bucket = 'kiln-test'): Promise<S3rverHandle> {
  const directory = await mkdtemp(path.join(tmpdir(), 'kiln-s3rver-'));
  const events: S3WriteEvent[] = [];
  const launch = async (port: number) => {
    const server = new S3rver({
      address: '127.0.0.1',
      port,
      silent: true,
      directory,
      configureBuckets: [{ name: bucket, configs: [] }],
    });
    // s3rver is a Koa application (an EventEmitter); its typings leave that out.
    (server as unknown as NodeJS.EventEmitter).on('event', (event: { Records: Array<{ eventName: string; s3: { object: { key: string } } }> }) => {
      for (const r of event.Records) events.push({ eventName: r.eventName, key: decodeURIComponent(r.s3.object.key) });
    });
    const address = await server.run();
    return { server, port: address.port };
  };
  let running: Awaited<ReturnType<typeof launch>> | null;
  try {
    running = await launch(0);
  } catch (err) {
    await rm(directory, { recursive: true, force: true });
    throw err;
  }
  const port = running.port;
  let stopped: Promise<void> | undefined;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    bucket,
    port,
    credentials: S3RVER_CREDENTIALS,
    events,
    async pause() {
      const current = running;
      running = null;
      await current?.server.close();
    },
    async resume() {
      if (running === null) running = await launch(port);
    },
    stop() {
      stopped ??= (async () => {
        await running?.server.close();
        running = null;
        await rm(directory, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}

/** Kiln's S3 store on a running s3rver's bucket. */
export function s3StoreOn(s3: S3rverHandle): S3Store {
  return new S3Store({ bucket: s3.bucket, endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: s3.credentials });
}
