// The bundled demo service, written into each release directory as server.mjs.
// Warm-up before listening, /healthz answers "ok <release>" or 503 when the release is broken.
export const SERVICE_SOURCE = `import http from 'node:http';
import { readFileSync, existsSync } from 'node:fs';

const release = readFileSync(new URL('./RELEASE', import.meta.url), 'utf8').trim();
const broken = existsSync(new URL('./BROKEN', import.meta.url));
const port = Number(process.env.PORT);
const warmupMs = Number(process.env.WARMUP_MS ?? 300);

const server = http.createServer((req, res) => {
  if (req.url === '/healthz') {
    if (broken) {
      res.writeHead(503, { 'content-type': 'text/plain' });
      res.end('unhealthy: cannot reach the payment provider\\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok ' + release + '\\n');
    return;
  }
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end('orders from ' + release + '\\n');
});

process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
});

setTimeout(() => {
  server.listen(port, '127.0.0.1', () => console.log(release + ' listening on ' + port + ' (pid ' + process.pid + ')'));
}, warmupMs);
`;
