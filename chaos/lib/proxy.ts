import net from 'node:net';

/** A TCP proxy on 127.0.0.1 that can cut its link: every connection severed, new ones refused. */
export interface TcpProxy {
  readonly port: number;
  /** Destroys every open connection (both sides) and refuses new ones until `heal`. */
  sever(): void;
  heal(): void;
  /** Connections currently relayed. */
  readonly open: number;
  close(): Promise<void>;
}

/**
 * Relays 127.0.0.1:<port> to `target` byte for byte. While severed, an incoming connection is
 * reset at once (as a cut network would make a connect fail), and the server sees every relayed
 * session end, as when a link between two hosts dies (a real partition would keep the server's
 * side half-open until keepalive notices; ending it is the harder case for fencing, since the
 * server-side session and its advisory locks go away at once).
 */
export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const pairs = new Set<{ a: net.Socket; b: net.Socket }>();
  let severed = false;
  const server = net.createServer((client) => {
    if (severed) {
      client.resetAndDestroy();
      return;
    }
    const upstream = net.connect(target.port, target.host);
    const pair = { a: client, b: upstream };
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  const proxy: TcpProxy = {
    port,
    get open() {
      return pairs.size;
    },
    sever() {
      severed = true;
      for (const { a, b } of [...pairs]) {
        a.resetAndDestroy();
        b.resetAndDestroy();
      }
      pairs.clear();
    },
    heal() {
      severed = false;
    },
    async close() {
      proxy.sever();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return proxy;
}
