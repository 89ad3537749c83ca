import type { IncomingMessage } from 'node:http';
import { CloseCode, handleProtocols, makeServer, MessageType, stringifyMessage, type ServerOptions } from 'graphql-ws';
import type { WebSocket, WebSocketServer } from 'ws';

/**
 * A ping's payload is echoed in the pong only up to this many bytes of JSON; a bigger one gets a
 * pong without payload. graphql-ws's own adapter echoes whatever came, so a client sending 64 KiB
 * pings and reading nothing had the server queue 64 KiB per ping (security review M1).
 */
export const PONG_ECHO_MAX_BYTES = 256;

/** What graphql-ws's handlers see of a socket: the `ws` socket and its upgrade request. */
export interface SocketExtra {
  socket: WebSocket;
  request: IncomingMessage;
}

/**
 * graphql-ws's server (`makeServer`, its public surface) over `ws` sockets, as `graphql-ws/use/ws`
 * does, with two differences: pongs echo small payloads only (PONG_ECHO_MAX_BYTES), and there is
 * no keep-alive or error listener of its own (keepSocketAlive and websocket.ts have those).
 * `accept` hands it one socket, already upgraded on the GraphQL subprotocol.
 */
export function graphqlWsOver<E extends SocketExtra>(
  wsServer: WebSocketServer,
  options: ServerOptions<Record<string, unknown> | undefined, E>,
  onError: (err: unknown) => void,
): { accept(socket: WebSocket, extra: E): void; dispose(): Promise<void> } {
  const server = makeServer(options);
  wsServer.options.handleProtocols = handleProtocols;
  return {
    accept(socket, extra) {
      const send = (data: string) =>
        new Promise<void>((resolve, reject) => {
          if (socket.readyState !== socket.OPEN) return resolve();
          socket.send(data, (err) => (err ? reject(err) : resolve()));
        });
      const closed = server.opened(
        {
          protocol: socket.protocol,
          send,
          close: (code, reason) => socket.close(code, reason),
          onMessage: (cb) =>
            socket.on('message', (data) => {
              cb(String(data)).catch((err: unknown) => {
                onError(err);
                socket.close(CloseCode.InternalServerError, 'Internal server error');
              });
            }),
          onPing: (payload) => {
            const small = payload !== undefined && JSON.stringify(payload).length <= PONG_ECHO_MAX_BYTES;
            return send(stringifyMessage(small ? { type: MessageType.Pong, payload } : { type: MessageType.Pong }));
          },
        },
        extra,
      );
      socket.once('close', (code, reason) => void closed(code, String(reason)));
    },
    async dispose() {
      for (const client of wsServer.clients) client.close(1001, 'Going away');
      wsServer.removeAllListeners();
      await new Promise<void>((resolve, reject) => wsServer.close((err) => (err ? reject(err) : resolve())));
    },
  };
}
