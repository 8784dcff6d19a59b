import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { attempt } from '../../src/checks/redis.js';
import type { AttemptContext } from '../../src/checks/types.js';
import { pollCheck } from '../../src/poll.js';
import type { CheckSpec } from '../../src/recipe/types.js';
import { attemptContext, checkSpec } from '../support/checks.js';
import { freePort, serverAvailability, startRedis, startSilentServer, type RedisHandle } from '../support/servers.js';

const PASSWORD = 'Rd-s3cret/with:odd@chars';
const WRONG = 'wr0ng-Passw0rd-xyzzy';

const avail = serverAvailability('redis');
if (!avail.ok) console.warn(avail.message);

function ctx(timeoutMs = 5000): AttemptContext {
  return attemptContext(timeoutMs);
}

function spec(url: string, timing: Partial<CheckSpec> = {}): CheckSpec {
  return checkSpec({ type: 'redis', url }, { name: 'cache', target: 'redis cache', ...timing });
}

describe.skipIf(!avail.ok)('redis check', () => {
  let open: RedisHandle;
  let auth: RedisHandle;
  let loading: RedisHandle;
  beforeAll(async () => {
    [open, auth, loading] = await Promise.all([startRedis(), startRedis({ password: PASSWORD }), startRedis({ loading: true })]);
  });
  afterAll(async () => {
    await Promise.all([open?.stop(), auth?.stop(), loading?.stop()]);
  });

  test('a running server answers PING with PONG', async () => {
    const r = await attempt({ type: 'redis', url: open.url }, ctx());
    expect(r).toMatchObject({ ok: true, error: null });
    expect(r.detail).toContain('PONG');
  });

  test('SELECT of the database in the URL path', async () => {
    expect(await attempt({ type: 'redis', url: open.urlFor({ db: 3 }) }, ctx())).toMatchObject({ ok: true });
    const r = await attempt({ type: 'redis', url: open.urlFor({ db: 99 }) }, ctx());
    expect(r.error?.code).toBe('REDIS_DB_INVALID');
  });

  test('a host name that does not resolve is ENOTFOUND (EAI_AGAIN without DNS)', async () => {
    const r = await attempt({ type: 'redis', url: `redis://:pw-x@no-such-host.invalid:6379/0` }, ctx());
    expect(r.ok).toBe(false);
    expect(['ENOTFOUND', 'EAI_AGAIN']).toContain(r.error?.code);
    expect(JSON.stringify(r)).not.toContain('pw-x');
  });

  test('nothing listening is ECONNREFUSED', async () => {
    const port = await freePort();
    const r = await attempt({ type: 'redis', url: `redis://127.0.0.1:${port}/0` }, ctx());
    expect(r.ok).toBe(false);
    expect(r.error?.code).toBe('ECONNREFUSED');
  });

  test('a password-only URL (redis://:pw@host/0) authenticates', async () => {
    expect(auth.url).toMatch(/^redis:\/\/:[^@]+@127\.0\.0\.1:\d+\/0$/);
    const r = await attempt({ type: 'redis', url: auth.url }, ctx());
    expect(r).toMatchObject({ ok: true, error: null });
    expect(JSON.stringify(r)).not.toContain(PASSWORD);
    expect(JSON.stringify(r)).not.toContain(encodeURIComponent(PASSWORD));
  });

  test('a wrong password is REDIS_AUTH_FAILED and neither password appears anywhere', async () => {
    const r = await attempt({ type: 'redis', url: auth.urlFor({ password: WRONG }) }, ctx());
    expect(r.ok).toBe(false);
    expect(r.error?.code).toBe('REDIS_AUTH_FAILED');
    expect(r.error?.message).toContain('WRONGPASS');
    const json = JSON.stringify(r);
    expect(json).not.toContain(WRONG);
    expect(json).not.toContain(PASSWORD);
  });

  test('no password against a server that requires one is REDIS_AUTH_FAILED (NOAUTH)', async () => {
    const r = await attempt({ type: 'redis', url: `redis://127.0.0.1:${auth.port}/0` }, ctx());
    expect(r.error?.code).toBe('REDIS_AUTH_FAILED');
    expect(r.error?.message).toContain('NOAUTH');
  });

  test('a server loading its dataset is REDIS_LOADING', async () => {
    const r = await attempt({ type: 'redis', url: loading.url }, ctx());
    expect(r.ok).toBe(false);
    expect(r.error?.code).toBe('REDIS_LOADING');
  });

  test('rediss:// against a plain server fails promptly', async () => {
    const t0 = performance.now();
    const r = await attempt({ type: 'redis', url: open.url.replace(/^redis:/, 'rediss:') }, ctx(2000));
    expect(r.ok).toBe(false);
    expect(r.error?.message).toMatch(/TLS|SSL/);
    expect(performance.now() - t0).toBeLessThan(4000);
  });

  test('a server that accepts TCP but never speaks costs one attempt timeout and the socket is closed', async () => {
    const silent = await startSilentServer();
    try {
      const t0 = performance.now();
      const r = await attempt({ type: 'redis', url: `redis://:${encodeURIComponent(PASSWORD)}@127.0.0.1:${silent.port}/0` }, ctx(300));
      expect(r.ok).toBe(false);
      expect(r.error?.code).toBe('ETIMEDOUT');
      expect(r.error?.message).toContain('AUTH');
      expect(performance.now() - t0).toBeLessThan(3000);
      await silent.waitAllClosed(2000);
      expect(JSON.stringify(r)).not.toContain(PASSWORD);
    } finally {
      await silent.stop();
    }
  });

  test('polled: a server that keeps loading times out naming REDIS_LOADING', async () => {
    const outcome = await pollCheck(spec(loading.url, { timeoutMs: 800, intervalMs: 100 }));
    expect(outcome.status).toBe('failed');
    expect(outcome.attempts).toBeGreaterThan(1);
    expect(outcome.error?.code).toBe('REDIS_LOADING');
    expect(outcome.error?.message).toContain('check "cache"');
  });

  test('polled: a server that comes back while the check waits is reported ready', async () => {
    await auth.halt();
    const polling = pollCheck(spec(auth.url, { timeoutMs: 30_000 }));
    const restarted = new Promise<void>((resolve, reject) => setTimeout(() => auth.start().then(resolve, reject), 500));
    const [outcome] = await Promise.all([polling, restarted]);
    expect(outcome.status).toBe('ready');
    expect(outcome.attempts).toBeGreaterThan(1);
    expect(JSON.stringify(outcome)).not.toContain(PASSWORD);
  });
});
