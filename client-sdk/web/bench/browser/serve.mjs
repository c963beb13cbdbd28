// A static server for the browser benchmark (bench/browser/first-sync.html):
// serves the page, the SDK's dist/ under /sdk/, and passes /v1/ to a relais
// server, so that the page and the API share one origin as they will when
// relais serve embeds the app. Pages report with POST /log, printed here.
//   node bench/browser/serve.mjs PORT http://127.0.0.1:RELAIS_PORT dist
//   chromium --headless http://127.0.0.1:PORT/first-sync.html
// fetch() undoes gzip here, so the browser's byte counts are of plain bodies.
import http from 'node:http';
import { readFileSync } from 'node:fs';
const [,, port, upstream, dist] = process.argv;
const types = { '.js': 'text/javascript', '.wasm': 'application/wasm', '.html': 'text/html' };
http.createServer(async (req, res) => {
  if (req.url === '/log') { const c = []; for await (const x of req) c.push(x); console.log('PAGE:', Buffer.concat(c).toString()); res.end(); return; }
  if (req.url.startsWith('/v1/')) {
    const chunks = []; for await (const c of req) chunks.push(c);
    const headers = { ...req.headers }; delete headers.host;
    const r = await fetch(upstream + req.url, { method: req.method, headers, body: req.method === 'GET' ? undefined : Buffer.concat(chunks) });
    const h = {}; r.headers.forEach((v, k) => { if (k !== 'content-encoding' && k !== 'content-length') h[k] = v; });
    res.writeHead(r.status, h); res.end(Buffer.from(await r.arrayBuffer())); return;
  }
  const path = req.url === '/' ? '/first-sync.html' : req.url;
  const file = path.startsWith('/sdk/') ? dist + path.slice(4) : new URL('.' + path, import.meta.url).pathname;
  try { const b = readFileSync(file); res.writeHead(200, { 'Content-Type': types[file.slice(file.lastIndexOf('.'))] || 'application/octet-stream' }); res.end(b); }
  catch { res.writeHead(404); res.end(); }
}).listen(Number(port), '127.0.0.1');
