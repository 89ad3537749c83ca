import WebSocket from 'ws';

/** A graphql-transport-ws socket to a Kiln, past connection_init with `token` (rejects if refused or closed). */
export async function openGraphqlWs(url: string, token: string): Promise<WebSocket> {
  const ws = new WebSocket(`${url.replace('http', 'ws')}/graphql`, 'graphql-transport-ws');
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  ws.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } }));
  await new Promise<void>((resolve, reject) => {
    ws.once('message', (data) => (JSON.parse(String(data)).type === 'connection_ack' ? resolve() : reject(new Error(String(data)))));
    ws.once('close', (code) => reject(new Error(`closed with ${code}`)));
  });
  return ws;
}
