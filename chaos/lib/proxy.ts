import net from 'node:net';

/**
 * A TCP proxy on 127.0.0.1 that can cut its link: `sever` (every connection reset, new ones
 * refused) or `blackhole` (nothing passes, nothing is closed).
 */
export interface TcpProxy {
  readonly port: number;
  /** Destroys every open connection (both sides) and refuses new ones until `heal`. */
  sever(): void;
  /**
   * Packets silently dropped: both directions stop flowing (each side's bytes wait, unread, in
   * the kernel's buffers), no side learns that the other closed, and new connections are
   * accepted but not connected upstream. Neither peer can tell: their sockets stay open and the
   * proxy's kernel keeps acknowledging (so even TCP keepalive probes are answered, as behind a
   * NAT or a connection pooler). `heal` lets everything through, as TCP retransmission would
   * after a real partition ends: held bytes flow, held closes are passed on, held connections
   * are connected upstream.
   */
  blackhole(): void;
  heal(): void;
  /** Connections currently relayed. */
  readonly open: number;
  close(): Promise<void>;
}

interface Pair {
  client: net.Socket;
  upstream: net.Socket | null;
  /** Which side closed while blackholed (passed on at heal). */
  closed: Set<'client' | 'upstream'>;
}

/**
 * Relays 127.0.0.1:<port> to `target` byte for byte. While severed, an incoming connection is
 * reset at once (as a cut network would make a connect fail), and the server sees every relayed
 * session end, as when a link between two hosts dies (a real partition would keep the server's
 * side half-open until keepalive notices; ending it is the harder case for fencing, since the
 * server-side session and its advisory locks go away at once). While blackholed, see `blackhole`.
 */
export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const pairs = new Set<Pair>();
  let severed = false;
  let holed = false;

  const destroy = (pair: Pair) => {
    pairs.delete(pair);
    pair.client.destroy();
    pair.upstream?.destroy();
  };
  const flow = (pair: Pair) => {
    pair.client.pipe(pair.upstream!);
    pair.upstream!.pipe(pair.client);
    pair.client.resume();
    pair.upstream!.resume();
  };
  const hold = (pair: Pair) => {
    pair.client.unpipe();
    pair.client.pause();
    if (pair.upstream) {
      pair.upstream.unpipe();
      pair.upstream.pause();
    }
  };
  const onGone = (pair: Pair, side: 'client' | 'upstream') => () => {
    if (!pairs.has(pair)) return;
    if (holed) pair.closed.add(side); // the other side must not learn it before the heal
    else destroy(pair);
  };
  const connectUpstream = (pair: Pair) => {
    const upstream = net.connect(target.port, target.host);
    pair.upstream = upstream;
    upstream.on('error', onGone(pair, 'upstream')).on('close', onGone(pair, 'upstream'));
    if (holed) hold(pair);
    else flow(pair);
  };

  const server = net.createServer((client) => {
    if (severed) {
      client.resetAndDestroy();
      return;
    }
    const pair: Pair = { client, upstream: null, closed: new Set() };
    pairs.add(pair);
    client.on('error', onGone(pair, 'client')).on('close', onGone(pair, 'client'));
    if (holed) client.pause(); // SYN "dropped": connected upstream at the heal
    else connectUpstream(pair);
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
      holed = false;
      for (const pair of [...pairs]) {
        pair.client.resetAndDestroy();
        pair.upstream?.resetAndDestroy();
      }
      pairs.clear();
    },
    blackhole() {
      holed = true;
      for (const pair of pairs) hold(pair);
    },
    heal() {
      severed = false;
      if (!holed) return;
      holed = false;
      for (const pair of [...pairs]) {
        if (pair.closed.size > 0) {
          // Flush what the closed side had sent before its close, then end the other side.
          if (pair.upstream && !pair.closed.has('upstream') && pair.client.readableLength > 0) pair.upstream.write(pair.client.read() ?? Buffer.alloc(0));
          if (pair.upstream && !pair.closed.has('client') && pair.upstream.readableLength > 0) pair.client.write(pair.upstream.read() ?? Buffer.alloc(0));
          pair.client.end();
          pair.upstream?.end();
          setTimeout(() => destroy(pair), 1000).unref();
        } else if (pair.upstream) flow(pair);
        else connectUpstream(pair);
      }
    },
    async close() {
      proxy.sever();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return proxy;
}
