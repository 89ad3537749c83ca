import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ObjectNotFoundError, type ArtifactStore } from '../src/storage/ArtifactStore.js';
import { createArtifactStore } from '../src/storage/createArtifactStore.js';
import { FilesystemStore } from '../src/storage/filesystem.js';
import { S3Store } from '../src/storage/s3.js';
import { startS3rver, type S3rverHandle } from './helpers/s3.js';

interface StoreFixture {
  name: string;
  /** Whether url() gives a fetchable address (S3) or null (the local store). */
  presigns: boolean;
  start(): Promise<{ store: ArtifactStore; stop(): Promise<void> }>;
}

const fixtures: StoreFixture[] = [
  {
    name: 'FilesystemStore',
    presigns: false,
    async start() {
      const dir = await mkdtemp(path.join(tmpdir(), 'kiln-fs-store-'));
      return { store: new FilesystemStore(dir), stop: () => rm(dir, { recursive: true, force: true }) };
    },
  },
  {
    name: 'S3Store',
    presigns: true,
    async start() {
      const s3 = await startS3rver();
      const store = s3Store(s3);
      return {
        store,
        async stop() {
          store.close();
          await s3.stop();
        },
      };
    },
  },
];

function s3Store(s3: S3rverHandle, extra: Partial<ConstructorParameters<typeof S3Store>[0]> = {}): S3Store {
  return new S3Store({
    bucket: s3.bucket,
    endpoint: s3.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: s3.credentials,
    ...extra,
  });
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** `size` random bytes as a stream of 1 MiB chunks, and the sha256 of what it yields. */
function randomStream(size: number): { stream: Readable; digest: () => string } {
  const hash = createHash('sha256');
  async function* chunks() {
    for (let left = size; left > 0; ) {
      const chunk = randomBytes(Math.min(left, 1024 * 1024));
      hash.update(chunk);
      left -= chunk.length;
      yield chunk;
    }
  }
  return { stream: Readable.from(chunks()), digest: () => hash.digest('hex') };
}

const badKeys = ['', '/abs/path', 'a/../b', '..', 'a//b', 'a/', './a', 'a\\b', 'nul\u0000byte'];

describe.each(fixtures)('$name honours the ArtifactStore contract', (fixture) => {
  let store: ArtifactStore;
  let stop: () => Promise<void>;

  beforeAll(async () => {
    ({ store, stop } = await fixture.start());
  });
  afterAll(async () => {
    await stop?.();
  });

  it('stores a buffer and a string and reads them back with their byte sizes', async () => {
    const bytes = Buffer.from([0, 1, 2, 255, 254]);
    await expect(store.put('bin/data.bin', bytes)).resolves.toEqual({ key: 'bin/data.bin', size: 5 });
    expect(await store.get('bin/data.bin')).toEqual(bytes);

    const text = 'héllo wörld ✓\n';
    const res = await store.put('logs/job-1/1.log', text, { contentType: 'text/plain; charset=utf-8' });
    expect(res.size).toBe(Buffer.byteLength(text));
    expect((await store.get('logs/job-1/1.log')).toString('utf8')).toBe(text);
  });

  it('replaces an object that is put twice', async () => {
    await store.put('replace/me.txt', 'first version, longer');
    await store.put('replace/me.txt', 'second');
    expect((await store.get('replace/me.txt')).toString()).toBe('second');
  });

  it('stores a Readable stream', async () => {
    const res = await store.put('stream/small.txt', Readable.from(['line 1\n', 'line 2\n', 'line 3\n']));
    expect(res).toEqual({ key: 'stream/small.txt', size: 21 });
    expect((await store.get('stream/small.txt')).toString()).toBe('line 1\nline 2\nline 3\n');
  });

  it('stores a 20 MB stream in parts and reads it back byte for byte', async () => {
    const size = 20 * 1024 * 1024 + 12_345;
    const { stream, digest } = randomStream(size);
    await expect(store.put('big/20mb.bin', stream)).resolves.toEqual({ key: 'big/20mb.bin', size });
    const expected = digest();
    expect(sha256(await readAll(await store.getStream('big/20mb.bin')))).toBe(expected);
    expect(sha256(await store.get('big/20mb.bin'))).toBe(expected);
  });

  it('leaves no object behind when the source stream fails', async () => {
    async function* failing() {
      yield Buffer.from('partial ');
      throw new Error('source broke');
    }
    await expect(store.put('broken/upload.log', Readable.from(failing()))).rejects.toThrow('source broke');
    expect(await store.exists('broken/upload.log')).toBe(false);
  });

  it('streams an object out with getStream', async () => {
    await store.put('get/stream.txt', 'streamed body');
    expect((await readAll(await store.getStream('get/stream.txt'))).toString()).toBe('streamed body');
  });

  it('streams a byte range of an object out with getStream (a log inside a pack)', async () => {
    await store.put('get/range.txt', 'first|second|third');
    expect((await readAll(await store.getStream('get/range.txt', { start: 6, length: 6 }))).toString()).toBe('second');
    expect((await readAll(await store.getStream('get/range.txt', { start: 0, length: 1 }))).toString()).toBe('f');
    expect((await readAll(await store.getStream('get/range.txt', { start: 13, length: 5 }))).toString()).toBe('third');
    await expect(store.getStream('get/no-such-range.txt', { start: 0, length: 1 })).rejects.toBeInstanceOf(ObjectNotFoundError);
  });

  it('reports which keys exist', async () => {
    await store.put('exists/yes.txt', 'x');
    expect(await store.exists('exists/yes.txt')).toBe(true);
    expect(await store.exists('exists/no.txt')).toBe(false);
    expect(await store.exists('exists')).toBe(false);
  });

  it('deletes an object, and deleting a missing key is not an error', async () => {
    await store.put('delete/me.txt', 'x');
    await store.delete('delete/me.txt');
    expect(await store.exists('delete/me.txt')).toBe(false);
    await expect(store.delete('delete/me.txt')).resolves.toBeUndefined();
    await expect(store.delete('never/existed.txt')).resolves.toBeUndefined();
  });

  it('deletes everything under a prefix, more than one listing page of it, and nothing beside it', async () => {
    const keys = Array.from({ length: 1005 }, (_, i) => `gone/${i % 3}/obj-${i}.txt`);
    for (const key of keys) await store.put(key, 'x');
    await store.put('gone-not/kept.txt', 'kept');
    await store.put('gonex', 'kept');
    await store.deletePrefix('gone/');
    expect(await Promise.all([keys[0]!, keys[1004]!, 'gone/2/obj-2.txt'].map((key) => store.exists(key)))).toEqual([false, false, false]);
    expect(await store.get('gone-not/kept.txt')).toEqual(Buffer.from('kept'));
    expect(await store.exists('gonex')).toBe(true);
    await expect(store.deletePrefix('never/there/')).resolves.toBeUndefined();
    await expect(store.deletePrefix('gone')).rejects.toThrow(/must end with "\/"/);
    await expect(store.deletePrefix('../')).rejects.toThrow(/invalid artifact key/);
  }, 120_000);

  it('throws ObjectNotFoundError for a missing key from get and getStream', async () => {
    const err = await store.get('missing/key.txt').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ObjectNotFoundError);
    expect((err as ObjectNotFoundError).key).toBe('missing/key.txt');
    await expect(store.getStream('missing/key.txt')).rejects.toBeInstanceOf(ObjectNotFoundError);
  });

  it.each(badKeys)('refuses the invalid key %j in every operation', async (key) => {
    const invalid = /invalid artifact key/;
    await expect(store.put(key, 'x')).rejects.toThrow(invalid);
    await expect(store.put(key, Readable.from(['x']))).rejects.toThrow(invalid);
    await expect(store.get(key)).rejects.toThrow(invalid);
    await expect(store.getStream(key)).rejects.toThrow(invalid);
    await expect(store.exists(key)).rejects.toThrow(invalid);
    await expect(store.delete(key)).rejects.toThrow(invalid);
    await expect(store.url(key)).rejects.toThrow(invalid);
  });

  it(fixture.presigns ? 'gives a presigned URL that serves the object' : 'has no URL for objects', async () => {
    await store.put('url/object.txt', 'fetch me', { contentType: 'text/plain' });
    const url = await store.url('url/object.txt', 60);
    if (!fixture.presigns) {
      expect(url).toBeNull();
      return;
    }
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\//);
    const res = await fetch(url!);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain');
    expect(await res.text()).toBe('fetch me');
  });

  it('passes its readiness check', async () => {
    await expect(store.check()).resolves.toBeUndefined();
    expect(store.description).toMatch(fixture.presigns ? /^s3:\/\/kiln-test/ : /^file:\/\/\//);
  });
});

describe('FilesystemStore', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'kiln-fs-only-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('leaves no temporary files beside the objects it writes', async () => {
    const store = new FilesystemStore(path.join(dir, 'clean'));
    await store.put('a/b.txt', 'one');
    await store.put('a/c.txt', Readable.from(['two']));
    expect((await readdir(path.join(dir, 'clean', 'a'))).sort()).toEqual(['b.txt', 'c.txt']);
  });

  it('fails its readiness check when the directory cannot be created', async () => {
    await writeFile(path.join(dir, 'a-file'), '');
    await expect(new FilesystemStore(path.join(dir, 'a-file', 'sub')).check()).rejects.toThrow();
  });
});

describe('S3Store', () => {
  it('fails its readiness check within seconds once the server is gone', async () => {
    const s3 = await startS3rver();
    const store = s3Store(s3);
    try {
      await store.check();
      await s3.stop();
      const started = Date.now();
      await expect(store.check()).rejects.toThrow(/unreachable/);
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      store.close();
      await s3.stop();
    }
  });

  it('fails its readiness check at its deadline when the server accepts but never answers', async () => {
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as { port: number };
    const store = new S3Store({
      bucket: 'b',
      endpoint: `http://127.0.0.1:${port}`,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
      checkTimeoutMs: 1000,
    });
    try {
      const started = Date.now();
      await expect(store.check()).rejects.toThrow(/unreachable/);
      expect(Date.now() - started).toBeLessThan(3000);
    } finally {
      store.close();
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it('does not mistake a missing bucket for a missing object', async () => {
    const s3 = await startS3rver();
    const store = s3Store(s3, { bucket: 'no-such-bucket' });
    try {
      const err = await store.get('a.txt').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Error);
      expect(err).not.toBeInstanceOf(ObjectNotFoundError);
      await expect(store.check()).rejects.toThrow(/unreachable/);
    } finally {
      store.close();
      await s3.stop();
    }
  });
});

describe('createArtifactStore', () => {
  it('builds a local store or an S3 store from configuration', () => {
    const local = createArtifactStore({ kind: 'filesystem', dir: '/var/kiln/artifacts' });
    expect(local).toBeInstanceOf(FilesystemStore);
    expect(local.description).toBe('file:///var/kiln/artifacts');

    const s3 = createArtifactStore({ kind: 's3', bucket: 'logs', endpoint: 'http://127.0.0.1:1', region: 'eu-west-1', forcePathStyle: true });
    expect(s3).toBeInstanceOf(S3Store);
    expect(s3.description).toMatch(/^s3:\/\/logs/);
    (s3 as S3Store).close();
  });
});
