import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { assertValidKey, assertValidPrefix, ObjectNotFoundError, type ArtifactStore, type ByteRange } from './ArtifactStore.js';

/** Options of an S3Store; any S3-compatible endpoint works. */
export interface S3StoreOptions {
  bucket: string;
  /** e.g. `http://127.0.0.1:9000`; unset: AWS's endpoint for `region`. */
  endpoint?: string;
  region: string;
  /** `true` for most S3-compatible servers (bucket in the path, not the host name). */
  forcePathStyle: boolean;
  /** Unset: the AWS SDK's default chain (`AWS_ACCESS_KEY_ID`, profiles, instance roles...). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Milliseconds to establish a connection before giving up. Default 3000. */
  connectionTimeoutMs?: number;
  /**
   * Milliseconds a socket may stay idle mid-request before the request fails. Default 60000:
   * long enough for a reader applying back-pressure to a getStream() body.
   */
  socketTimeoutMs?: number;
  /** Attempts per request, first included. Default 3. */
  maxAttempts?: number;
  /** Overall deadline of check(), milliseconds, retries included. Default 2000: /readyz waits at most that long for any check. */
  checkTimeoutMs?: number;
  /**
   * Multipart part size in bytes for streamed puts. Default 5 MiB, S3's minimum: a worker streams
   * every execution's log through here, and its memory is what it holds in parts.
   */
  partSize?: number;
  /** Parts uploaded concurrently (and so held in memory) per streamed put. Default 2. */
  queueSize?: number;
}

const MiB = 1024 * 1024;
/** S3 refuses presigned URLs valid for longer than 7 days. */
const MAX_PRESIGN_SECONDS = 7 * 24 * 3600;

/**
 * An ArtifactStore on S3. Buffers and strings go up in one PutObject; streams go through
 * lib-storage's Upload (multipart once they exceed one part), so memory stays bounded by
 * `partSize * queueSize`.
 */
export class S3Store implements ArtifactStore {
  readonly description: string;
  readonly bucket: string;
  private readonly client: S3Client;
  private readonly checkTimeoutMs: number;
  private readonly partSize: number;
  private readonly queueSize: number;

  constructor(opts: S3StoreOptions) {
    if (!opts.bucket) throw new Error('S3Store: bucket is required');
    this.bucket = opts.bucket;
    this.description = `s3://${opts.bucket}` + (opts.endpoint ? ` at ${opts.endpoint}` : '');
    this.checkTimeoutMs = opts.checkTimeoutMs ?? 2000;
    this.partSize = Math.max(opts.partSize ?? 5 * MiB, 5 * MiB);
    this.queueSize = Math.max(opts.queueSize ?? 2, 1);
    this.client = new S3Client({
      region: opts.region,
      endpoint: opts.endpoint,
      forcePathStyle: opts.forcePathStyle,
      credentials: opts.credentials,
      maxAttempts: opts.maxAttempts ?? 3,
      // The SDK's default CRC32 checksums corrupt streamed bodies on several S3-compatible
      // servers (s3rver among them); only send checksums where the API demands one.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: {
        connectionTimeout: opts.connectionTimeoutMs ?? 3000,
        socketTimeout: opts.socketTimeoutMs ?? 60_000,
      },
    });
  }

  async put(key: string, body: Buffer | string | Readable, opts?: { contentType?: string }): Promise<{ key: string; size: number }> {
    assertValidKey(key);
    const ContentType = opts?.contentType;
    if (typeof body === 'string' || body instanceof Uint8Array) {
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentType }));
      return { key, size: Buffer.byteLength(body) };
    }
    let size = 0;
    const counted = new Transform({
      transform(chunk: Buffer, _enc, done) {
        size += chunk.length;
        done(null, chunk);
      },
    });
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key: key, Body: counted, ContentType },
      partSize: this.partSize,
      queueSize: this.queueSize,
      leavePartsOnError: false,
    });
    try {
      await Promise.all([pipeline(body, counted), upload.done()]);
    } catch (err) {
      // Whichever side failed first, stop the other so neither the source nor the upload hangs.
      body.destroy();
      counted.destroy();
      await upload.abort().catch(() => undefined);
      throw err;
    }
    return { key, size };
  }

  async get(key: string): Promise<Buffer> {
    const { body } = await this.getBody(key);
    return Buffer.from(await body.transformToByteArray());
  }

  async getStream(key: string, range?: ByteRange): Promise<Readable> {
    const { body, sent } = await this.getBody(key, range);
    // In Node the SDK's body is an http.IncomingMessage with helper methods mixed in.
    const stream = body as unknown as Readable;
    if (range === undefined || (sent.start === range.start && sent.end === range.start + range.length - 1)) return stream;
    // A server that ignored the Range header, or sent more (s3rver answers `bytes=0-0` with the
    // whole object): only the range's bytes are passed on.
    return stream.pipe(slice({ start: range.start - sent.start, length: range.length }));
  }

  async exists(key: string): Promise<boolean> {
    assertValidKey(key);
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return true;
    } catch (err) {
      if (isNoSuchKey(err)) return false;
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    assertValidKey(key);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (err) {
      if (!isNoSuchKey(err)) throw err;
    }
  }

  /**
   * Lists a page of keys under the prefix (S3's 1000 at most) and deletes them, until none is left;
   * each listing starts over, so no marker is kept. The oldest calls on purpose, which every
   * S3-compatible server has right: ListObjects (s3rver fails a truncated ListObjectsV2) and one
   * DeleteObject per key (s3rver's multi-delete fails on two keys of one folder). An execution's
   * prefix holds a few objects, and this runs in housekeeping, off every request's path.
   */
  async deletePrefix(prefix: string): Promise<void> {
    assertValidPrefix(prefix);
    for (;;) {
      const page = await this.client.send(new ListObjectsCommand({ Bucket: this.bucket, Prefix: prefix, MaxKeys: 1000 }));
      const keys = (page.Contents ?? []).flatMap((o) => (o.Key === undefined ? [] : [o.Key]));
      if (keys.length === 0) return;
      for (const key of keys) await this.delete(key);
    }
  }

  /** A presigned GET, valid `expiresInSec` seconds (default one hour, at most 7 days). */
  async url(key: string, expiresInSec = 3600): Promise<string> {
    assertValidKey(key);
    if (!Number.isInteger(expiresInSec) || expiresInSec < 1 || expiresInSec > MAX_PRESIGN_SECONDS) {
      throw new Error(`presigned URL lifetime must be 1..${MAX_PRESIGN_SECONDS} seconds, got ${expiresInSec}`);
    }
    return getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.bucket, Key: key }), { expiresIn: expiresInSec });
  }

  /** HeadBucket within `checkTimeoutMs`, retries included. */
  async check(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }), {
        abortSignal: AbortSignal.timeout(this.checkTimeoutMs),
      });
    } catch (err) {
      throw new Error(`S3 bucket ${this.bucket} unreachable: ${describe(err)}`, { cause: err });
    }
  }

  /** Closes the client's idle sockets; the store is unusable afterwards. */
  close(): void {
    this.client.destroy();
  }

  private async getBody(key: string, range?: ByteRange) {
    assertValidKey(key);
    try {
      const Range = range === undefined ? undefined : `bytes=${range.start}-${range.start + range.length - 1}`;
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key, Range }));
      if (!res.Body) throw new Error(`S3 returned no body for ${key}`);
      // `bytes <first>-<last>/<size>` when the server sent a range; the whole object otherwise.
      const sent = /^bytes (\d+)-(\d+)\//.exec(res.ContentRange ?? '');
      return { body: res.Body, sent: sent ? { start: Number(sent[1]), end: Number(sent[2]) } : { start: 0, end: -1 } };
    } catch (err) {
      if (isNoSuchKey(err)) throw new ObjectNotFoundError(key);
      throw err;
    }
  }
}

/** Passes on only `range`'s bytes of a whole object's stream. */
function slice(range: ByteRange): Transform {
  let at = 0;
  const end = range.start + range.length;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      const from = Math.max(range.start - at, 0);
      const to = Math.min(end - at, chunk.length);
      at += chunk.length;
      done(null, from < to ? chunk.subarray(from, to) : undefined);
    },
  });
}

/**
 * NoSuchKey from GET, or a bare 404 from HEAD (which has no body to name the error). A
 * missing bucket is a configuration fault, not a missing object, so it is not matched.
 */
function isNoSuchKey(err: unknown): boolean {
  const e = err as { name?: string; Code?: string; $metadata?: { httpStatusCode?: number } } | undefined;
  if (e?.name === 'NoSuchBucket' || e?.Code === 'NoSuchBucket') return false;
  return e?.name === 'NoSuchKey' || e?.name === 'NotFound' || e?.$metadata?.httpStatusCode === 404;
}

function describe(err: unknown): string {
  const e = err as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const status = e?.$metadata?.httpStatusCode;
  const text = e?.message || e?.name || String(err);
  return status ? `${text} (HTTP ${status})` : text;
}
