import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';

/**
 * A Docker registry (API v2) on 127.0.0.1 that serves one local image under `repository` to
 * clients with the right Basic credentials, and a `hanging` repository that never answers. The
 * engine reaches it over plain HTTP (127.0.0.0/8 is an insecure registry by default), so a pull
 * never leaves the machine.
 */
export interface TestRegistry {
  /** `127.0.0.1:<port>` */
  host: string;
  repository: string;
  hanging: string;
  /** Every Authorization header received (undefined when none), in order. */
  authorizations: Array<string | undefined>;
  stop(): Promise<void>;
}

/** The files of a tar archive (ustar names up to 100 characters, as `docker save` writes them). */
function untar(archive: Buffer): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  const text = (b: Buffer) => b.toString('utf8').replace(/\0.*$/s, '');
  for (let offset = 0; offset + 512 <= archive.length; ) {
    const header = archive.subarray(offset, offset + 512);
    if (header.every((b) => b === 0)) break;
    const size = parseInt(text(header.subarray(124, 136)).trim() || '0', 8);
    files.set(text(header.subarray(0, 100)), archive.subarray(offset + 512, offset + 512 + size));
    offset += 512 + Math.ceil(size / 512) * 512;
  }
  return files;
}

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export async function startTestRegistry(opts: { image: string; username: string; password: string }): Promise<TestRegistry> {
  const saved = untar(execFileSync('docker', ['save', opts.image], { maxBuffer: 512 * 1024 * 1024 }));
  const [entry] = JSON.parse(saved.get('manifest.json')!.toString()) as Array<{ Config: string; Layers: string[] }>;
  const config = saved.get(entry!.Config)!;
  const layers = entry!.Layers.map((name) => gzipSync(saved.get(name)!));
  const blobs = new Map<string, Buffer>([[sha256(config), config], ...layers.map((l) => [sha256(l), l] as [string, Buffer])]);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
      config: { mediaType: 'application/vnd.docker.container.image.v1+json', size: config.length, digest: sha256(config) },
      layers: layers.map((l) => ({ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: l.length, digest: sha256(l) })),
    }),
  );
  const repository = 'kiln-test/pulled';
  const hanging = 'kiln-test/hanging';
  const expected = `Basic ${Buffer.from(`${opts.username}:${opts.password}`).toString('base64')}`;
  const authorizations: Array<string | undefined> = [];
  const held: ServerResponse[] = [];

  const server = createServer((req, res) => {
    const url = req.url ?? '';
    authorizations.push(req.headers.authorization);
    const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
      res.writeHead(status, { 'content-type': 'application/json', 'docker-distribution-api-version': 'registry/2.0', ...headers }).end(JSON.stringify(body));
    if (req.headers.authorization !== expected) {
      return json(401, { errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }, { 'www-authenticate': 'Basic realm="kiln-test"' });
    }
    if (url === '/v2/' || url === '/v2') return json(200, {});
    if (url.startsWith(`/v2/${hanging}/`)) return void held.push(res);
    const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/?]+)$/.exec(url);
    if (m && m[1] === repository && m[2] === 'manifests') {
      const headers = { 'content-type': 'application/vnd.docker.distribution.manifest.v2+json', 'docker-content-digest': sha256(manifest), 'content-length': String(manifest.length) };
      res.writeHead(200, headers).end(req.method === 'HEAD' ? undefined : manifest);
      return;
    }
    if (m && m[1] === repository && m[2] === 'blobs' && blobs.has(m[3]!)) {
      const blob = blobs.get(m[3]!)!;
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'docker-content-digest': m[3]!, 'content-length': String(blob.length) }).end(req.method === 'HEAD' ? undefined : blob);
      return;
    }
    json(404, { errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }] });
  });
  // The engine tries HTTPS first: a TLS hello is not HTTP, the socket is just closed.
  server.on('clientError', (_err, socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    repository,
    hanging,
    authorizations,
    stop: () =>
      new Promise((resolve) => {
        for (const res of held) res.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
