/**
 * The playground's own page and script. GraphiQL, React and the graphql-ws client come from
 * installed packages (see playground.ts); nothing is loaded from a CDN, so the page works on a
 * machine with no internet. The token is typed into the page and sent as `Authorization` over
 * HTTP and as `connectionParams.authorization` over the socket.
 */

const DEFAULT_QUERY = `# Kiln's GraphQL playground. Paste a token above (\`kiln token <user>\` in local mode).
#
# Queries and mutations go over HTTP; subscriptions over graphql-ws on the same path, e.g.
#   subscription { executionLogs(executionId: "<id>") { seq stream step text } }
#   subscription { executionUpdated { id status steps { index status } } }

query Overview {
  me { id }
  jobs(first: 20) {
    edges {
      node { id name schedule nextRunAt lastExecution { id number status } }
    }
  }
}
`;

/** The HTML of the playground page; `assets` is the URL prefix of the asset routes. */
export function playgroundHtml(assets: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Kiln · GraphQL playground</title>
<link rel="stylesheet" href="${assets}/graphiql.css">
<link rel="stylesheet" href="${assets}/kiln-playground.css">
</head>
<body>
<header id="kiln-bar">
  <strong>Kiln</strong>
  <label for="kiln-token">Token</label>
  <input id="kiln-token" type="password" autocomplete="off" spellcheck="false" placeholder="paste a bearer token (kiln token &lt;user&gt;)">
  <span id="kiln-status" role="status"></span>
</header>
<div id="graphiql">Loading the playground…</div>
<script src="${assets}/react.js"></script>
<script src="${assets}/react-dom.js"></script>
<script src="${assets}/graphiql.js"></script>
<script src="${assets}/graphql-ws.js"></script>
<script src="${assets}/kiln-playground.js"></script>
</body>
</html>
`;
}

export const PLAYGROUND_CSS = `html, body { height: 100%; margin: 0; }
body { display: flex; flex-direction: column; font-family: system-ui, sans-serif; }
#kiln-bar { display: flex; align-items: center; gap: .6rem; padding: .4rem .8rem; border-bottom: 1px solid #ddd; background: #fafafa; }
#kiln-bar strong { font-size: 1.05rem; color: #b4441d; }
#kiln-bar input { flex: 1; max-width: 40rem; font: 12px ui-monospace, monospace; padding: .3rem .4rem; }
#kiln-status { color: #666; font-size: .85rem; }
#graphiql { flex: 1; min-height: 0; }
`;

/** The page's script: a fetcher that routes subscriptions to graphql-ws, and the token box. */
export const PLAYGROUND_JS = `(function () {
  'use strict';
  var DEFAULT_QUERY = ${JSON.stringify(DEFAULT_QUERY)};
  var httpUrl = new URL('/graphql', location.href).toString();
  var wsUrl = (location.protocol === 'https:' ? 'wss:' : 'ws:') + '//' + location.host + '/graphql';
  var tokenBox = document.getElementById('kiln-token');
  var status = document.getElementById('kiln-status');
  try { tokenBox.value = sessionStorage.getItem('kiln.token') || ''; } catch (e) {}

  function token() { return tokenBox.value.trim().replace(/^Bearer\\s+/i, ''); }

  var ws = null;
  var wsToken = null;
  function socket() {
    var t = token();
    if (ws !== null && wsToken === t) return ws;
    if (ws !== null) ws.dispose();
    wsToken = t;
    ws = graphqlWs.createClient({ url: wsUrl, lazy: true, retryAttempts: 0, connectionParams: { authorization: 'Bearer ' + t } });
    return ws;
  }

  // The operations of a document, as [type, name] pairs (comments and strings left out).
  function operationsOf(query) {
    var src = String(query || '').replace(/"""[\\s\\S]*?"""/g, '""').replace(/"(?:[^"\\\\\\n]|\\\\.)*"/g, '""').replace(/#[^\\n\\r]*/g, '');
    var re = /(^|[\\s}])(query|mutation|subscription)\\b\\s*([_A-Za-z][_0-9A-Za-z]*)?/g;
    var m, found = [];
    while ((m = re.exec(src)) !== null) found.push([m[2], m[3] || null]);
    if (found.length === 0 && /^\\s*\\{/.test(src)) found.push(['query', null]);
    return found;
  }

  async function* subscribe(params) {
    try {
      for await (var result of socket().iterate(params)) yield result;
    } catch (err) {
      var reason = err && typeof err.code === 'number' ? 'socket closed: ' + err.code + ' ' + (err.reason || '') : String(err && err.message || err);
      yield { errors: [{ message: reason }] };
    }
  }

  function makeFetcher() {
    return function fetcher(params, opts) {
      var operations = operationsOf(params.query);
      // GraphiQL may still hold the name of the operation the editor had a moment ago.
      var named = operations.filter(function (o) { return o[1] === params.operationName; })[0];
      if (!named) params = Object.assign({}, params, { operationName: undefined });
      var type = (named || operations[0] || ['query'])[0];
      if (type === 'subscription') {
        return subscribe({ query: params.query, variables: params.variables || undefined, operationName: params.operationName || undefined });
      }
      var headers = Object.assign({ 'content-type': 'application/json', accept: 'application/json' }, opts && opts.headers);
      var t = token();
      if (t && !headers.authorization && !headers.Authorization) headers.authorization = 'Bearer ' + t;
      return fetch(httpUrl, { method: 'POST', headers: headers, body: JSON.stringify(params), credentials: 'omit' }).then(function (r) { return r.json(); });
    };
  }

  var params = new URLSearchParams(location.search);
  var root = ReactDOM.createRoot(document.getElementById('graphiql'));
  function render() {
    root.render(React.createElement(GraphiQL, {
      fetcher: makeFetcher(),
      defaultQuery: DEFAULT_QUERY,
      query: params.get('query') || undefined,
      variables: params.get('variables') || undefined,
      defaultEditorToolsVisibility: true,
    }));
    status.textContent = token() ? 'token set' : 'no token: requests will be refused';
  }

  // A new fetcher makes GraphiQL fetch the schema again, now with the new token.
  var pending = null;
  tokenBox.addEventListener('input', function () {
    try { sessionStorage.setItem('kiln.token', tokenBox.value); } catch (e) {}
    clearTimeout(pending);
    pending = setTimeout(render, 300);
  });
  render();
})();
`;
