// What the tools wait for, served by the harness itself so it knows to the millisecond when each became ready:
// a TCP port that opens at a chosen moment, and an HTTP endpoint that answers 503 until it is flipped to 200.
import http from 'node:http';
import { createServer } from 'node:net';
import { now } from './util.mjs';

/** A TCP port that is closed until open() is called; open() resolves with the moment it accepted connections. */
export function lateTcpPort(port) {
  const sockets = new Set();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.end();
  });
  server.on('error', () => {});
  let openedAt = null;
  return {
    get port() {
      return server.listening ? server.address().port : port;
    },
    get openedAt() {
      return openedAt;
    },
    open: () =>
      new Promise((resolveOpen, reject) => {
        server.once('error', reject);
        server.listen(port, '127.0.0.1', () => {
          openedAt = now();
          resolveOpen(openedAt);
        });
      }),
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        if (!server.listening) return r();
        server.close(() => r());
      }),
  };
}

/**
 * An HTTP server on 127.0.0.1 whose every path answers 503 until flip(), then 200 "ok".
 * Counts the responses it sent in each state (a tool that exits 0 while only 503s were sent lied).
 */
export async function flippingHttp(port = 0, { ready = false } = {}) {
  let flippedAt = ready ? now() : null;
  const served = { 503: 0, 200: 0 };
  const server = http.createServer((req, res) => {
    const ok = flippedAt !== null;
    served[ok ? 200 : 503] += 1;
    res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain', connection: 'close' });
    res.end(ok ? 'ok\n' : 'warming up\n');
  });
  server.keepAliveTimeout = 100;
  await new Promise((r, j) => server.once('error', j).listen(port, '127.0.0.1', r));
  return {
    port: server.address().port,
    served,
    get flippedAt() {
      return flippedAt;
    },
    flip: () => {
      flippedAt = now();
      return flippedAt;
    },
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** A TCP port that is open from the start (cold-start and dependency targets); port 0 lets the kernel choose. */
export async function openTcpPort(port = 0) {
  const t = lateTcpPort(port);
  await t.open();
  return t;
}
