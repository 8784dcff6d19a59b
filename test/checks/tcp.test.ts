import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { attempt, countEstablished } from '../../src/checks/tcp.js';
import type { AttemptContext, Resolver } from '../../src/checks/types.js';
import type { TcpProbe } from '../../src/recipe/types.js';

const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

function ctx(timeoutMs = 2_000, resolver?: Resolver): AttemptContext {
  return { signal: AbortSignal.timeout(timeoutMs), timeoutMs, ...(resolver ? { resolver } : {}) };
}

function probe(host: string, port: number, state: TcpProbe['state'] = 'open'): TcpProbe {
  return { type: 'tcp', host, port, state };
}

async function listen(host: string, port = 0): Promise<{ server: net.Server; port: number; sockets: Set<net.Socket> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, ipv6Only: host.includes(':') }, resolve);
  });
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  return { server, port: (server.address() as net.AddressInfo).port, sockets };
}

/** A port nothing listens on (bound, then released). */
async function freePort(host = '127.0.0.1'): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const resolverOf =
  (...addresses: string[]): Resolver =>
  async () =>
    addresses.map((address) => ({ address, family: net.isIPv6(address) ? 6 : 4 }));

const failingResolver =
  (code: string): Resolver =>
  async (host) => {
    throw Object.assign(new Error(`getaddrinfo ${code} ${host}`), { code });
  };

describe('tcp attempt: open', () => {
  it('passes when a connection is accepted, naming the address', async () => {
    const { port } = await listen('127.0.0.1');
    const r = await attempt(probe('127.0.0.1', port), ctx());
    expect(r).toMatchObject({ ok: true, error: null, addresses: [`127.0.0.1:${port}`] });
    expect(r.detail).toContain(`127.0.0.1:${port}`);
  });

  it('reports ECONNREFUSED when nothing listens, and returns at once', async () => {
    const port = await freePort();
    const started = performance.now();
    const r = await attempt(probe('127.0.0.1', port), ctx(5_000));
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(r.ok).toBe(false);
    expect(r.error?.code).toBe('ECONNREFUSED');
    expect(r.error?.message).toContain(`127.0.0.1:${port}`);
  });

  it('reaches an IPv6-only listener on ::1, written [::1] or ::1', async () => {
    const { port } = await listen('::1');
    for (const host of ['[::1]', '::1']) {
      const r = await attempt(probe(host, port), ctx());
      expect(r).toMatchObject({ ok: true, addresses: [`[::1]:${port}`] });
    }
  });

  it('tries every address of a name: first refused, second open', async () => {
    const { port } = await listen('::1');
    const r = await attempt(probe('db.example', port), ctx(2_000, resolverOf('127.0.0.1', '::1')));
    expect(r.ok).toBe(true);
    expect(r.addresses).toEqual([`127.0.0.1:${port}`, `[::1]:${port}`]);
    expect(r.detail).toContain(`[::1]:${port}`);
  });

  it('reports every address when none answers, with the first address code', async () => {
    const port = await freePort('::1');
    const r = await attempt(probe('db.example', port), ctx(2_000, resolverOf('127.0.0.1', '::1')));
    expect(r.ok).toBe(false);
    expect(r.error?.code).toBe('ECONNREFUSED');
    expect(r.error?.message).toContain(`127.0.0.1:${port}`);
    expect(r.error?.message).toContain(`[::1]:${port}`);
  });

  it('reports a name that does not resolve as ENOTFOUND / EAI_AGAIN, not a crash', async () => {
    const notFound = await attempt(probe('orders-db.internal', 5432), ctx(2_000, failingResolver('ENOTFOUND')));
    expect(notFound).toMatchObject({ ok: false, error: { code: 'ENOTFOUND' } });
    expect(notFound.error?.message).toContain('orders-db.internal');
    const again = await attempt(probe('orders-db.internal', 5432), ctx(2_000, failingResolver('EAI_AGAIN')));
    expect(again.error?.code).toBe('EAI_AGAIN');
    const empty = await attempt(probe('orders-db.internal', 5432), ctx(2_000, async () => []));
    expect(empty.error?.code).toBe('ENOTFOUND');
  });

  it('reports a real .invalid name through the system resolver', async () => {
    const r = await attempt(probe('safe-restart-test.invalid', 80), ctx(5_000));
    expect(r.ok).toBe(false);
    // Without network access getaddrinfo may answer EAI_AGAIN instead of ENOTFOUND; both mean "not resolvable yet".
    expect(['ENOTFOUND', 'EAI_AGAIN']).toContain(r.error?.code);
  });

  it('IP literals skip the resolver', async () => {
    const { port } = await listen('127.0.0.1');
    const r = await attempt(probe('127.0.0.1', port), ctx(2_000, failingResolver('ENOTFOUND')));
    expect(r.ok).toBe(true);
  });

  it('distinguishes ETIMEDOUT (accept backlog exhausted) from ECONNREFUSED', async () => {
    const { port, child } = await stalledListener();
    cleanups.push(() => void child.kill('SIGKILL'));
    // Fill the accept queue of a listener that never accepts; further SYNs are dropped by the kernel.
    const held: net.Socket[] = [];
    cleanups.push(() => held.forEach((s) => s.destroy()));
    let filled = false;
    for (let i = 0; i < 16 && !filled; i++) {
      const r = await attempt(probe('127.0.0.1', port), ctx(300));
      if (r.ok) {
        const s = net.connect(port, '127.0.0.1');
        s.on('error', () => {});
        held.push(s);
        await new Promise((resolve) => s.once('connect', resolve));
      } else {
        filled = true;
        expect(r.error?.code).toBe('ETIMEDOUT');
        expect(r.error?.message).toMatch(/timed out after 300ms/);
      }
    }
    expect(filled).toBe(true);
  });
});

describe('tcp attempt: closed', () => {
  it('passes when every address refuses', async () => {
    const port = await freePort('::1');
    const r = await attempt(probe('svc.example', port, 'closed'), ctx(2_000, resolverOf('127.0.0.1', '::1')));
    expect(r).toMatchObject({ ok: true, error: null });
  });

  it('fails with PORT_OPEN while any address still accepts', async () => {
    const { port } = await listen('::1');
    const r = await attempt(probe('svc.example', port, 'closed'), ctx(2_000, resolverOf('127.0.0.1', '::1')));
    expect(r.ok).toBe(false);
    expect(r.error?.code).toBe('PORT_OPEN');
    expect(r.error?.message).toContain(`[::1]:${port}`);
  });
});

describe('tcp attempt: drained', () => {
  it('fails while a connection to the local port is ESTABLISHED and passes once it is closed', async () => {
    const { port, server } = await listen('127.0.0.1');
    const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
    const client = net.connect(port, '127.0.0.1');
    client.on('error', () => {});
    cleanups.push(() => void client.destroy());
    const serverSide = await accepted;

    const busy = await attempt(probe('127.0.0.1', port, 'drained'), ctx());
    expect(busy.ok).toBe(false);
    expect(busy.error?.code).toBe('NOT_DRAINED');
    expect(busy.error?.message).toMatch(/^1 ESTABLISHED connection on local port/);

    const closed = new Promise((resolve) => serverSide.once('close', resolve));
    client.destroy();
    await closed;
    const drained = await attempt(probe('127.0.0.1', port, 'drained'), ctx());
    expect(drained).toMatchObject({ ok: true, error: null });
  });

  it('counts only ESTABLISHED rows whose local port matches', () => {
    const table = [
      '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
      '   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1',
      '   1: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 2 1',
      '   2: 0100007F:D431 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 3 1',
      '   3: 0100007F:1F90 0100007F:D432 06 00000000:00000000 00:00000000 00000000     0        0 4 1',
      '',
    ].join('\n');
    expect(countEstablished(table, 8080)).toBe(1);
    expect(countEstablished(table, 54321)).toBe(1);
    expect(countEstablished(table, 9999)).toBe(0);
  });
});

/** A child process that listens with backlog 1 and then blocks its event loop, so it never accepts. */
async function stalledListener(): Promise<{ port: number; child: ChildProcess }> {
  const script = `
    const s = require('net').createServer();
    s.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
      process.stdout.write(s.address().port + '\\n');
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60000);
      process.exit(0);
    });`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`stalled listener exited ${code}`)));
    child.stdout?.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
  });
  return { port, child };
}
