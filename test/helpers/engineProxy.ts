import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

/**
 * A Unix socket that relays, byte for byte, to the machine's Docker engine while it is open; while
 * it is closed there is no socket file at all, exactly as when Docker is not running (connect
 * fails with ENOENT). Kiln is pointed at it with DOCKER_HOST=`dockerHost`; the real engine, which
 * other tests use, is never touched.
 */
export interface EngineProxy {
  /** `unix://<socket>`. */
  readonly dockerHost: string;
  readonly socketPath: string;
  /** Starts relaying (idempotent). */
  open(): Promise<void>;
  /** Stops listening and cuts every relayed connection at once, as an engine that went away (idempotent). */
  close(): Promise<void>;
  /** Closes and removes the temporary directory. */
  dispose(): Promise<void>;
}

/** The engine the tests use: DOCKER_HOST's socket when it names one, else the default socket. */
function realEngineSocket(): string {
  const host = process.env.DOCKER_HOST;
  return host?.startsWith('unix://') ? host.slice('unix://'.length) : '/var/run/docker.sock';
}

/** A closed proxy to the real engine (call `open` to let requests through). */
export async function startEngineProxy(target = realEngineSocket()): Promise<EngineProxy> {
  const dir = await mkdtemp(path.join(tmpdir(), 'kiln-engine-'));
  const socketPath = path.join(dir, 'docker.sock');
  const relayed = new Set<net.Socket>();
  let server: net.Server | null = null;

  const relay = (client: net.Socket) => {
    const upstream = net.connect(target);
    for (const s of [client, upstream]) {
      relayed.add(s);
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
      s.on('close', () => {
        relayed.delete(s);
        (s === client ? upstream : client).destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  };

  const proxy: EngineProxy = {
    dockerHost: `unix://${socketPath}`,
    socketPath,
    async open() {
      if (server) return;
      const s = net.createServer(relay);
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(socketPath, () => resolve());
      });
      server = s;
    },
    async close() {
      const s = server;
      server = null;
      if (!s) return;
      // Node removes the socket file when a Unix socket server closes.
      const closed = new Promise<void>((resolve) => s.close(() => resolve()));
      for (const socket of relayed) socket.destroy();
      await closed;
    },
    async dispose() {
      await proxy.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return proxy;
}
