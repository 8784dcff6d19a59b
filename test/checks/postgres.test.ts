import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { attempt } from '../../src/checks/postgres.js';
import type { AttemptContext } from '../../src/checks/types.js';
import { pollCheck } from '../../src/poll.js';
import type { CheckSpec } from '../../src/recipe/types.js';
import { attemptContext, checkSpec } from '../support/checks.js';
import {
  freePort,
  serverAvailability,
  startPostgres,
  startSilentServer,
  type PostgresHandle,
  type SilentServer,
} from '../support/servers.js';

const PASSWORD = 'Pg-s3cret/with:odd@chars';
const WRONG = 'wr0ng-Passw0rd-xyzzy';

const avail = serverAvailability('postgres');
if (!avail.ok) console.warn(avail.message);

function ctx(timeoutMs = 5000): AttemptContext {
  return attemptContext(timeoutMs);
}

function spec(url: string, timing: Partial<CheckSpec> = {}): CheckSpec {
  return checkSpec({ type: 'postgres', url }, timing);
}

describe.skipIf(!avail.ok)('postgres check', () => {
  let pg: PostgresHandle;
  let standby: PostgresHandle;

  beforeAll(async () => {
    [pg, standby] = await Promise.all([startPostgres({ password: PASSWORD }), startPostgres({ startupDelay: 'standby' })]);
  });
  afterAll(async () => {
    await Promise.all([pg?.stop(), standby?.stop()]);
  });

  test('a running server answers SELECT 1', async () => {
    const r = await attempt({ type: 'postgres', url: pg.url }, ctx());
    expect(r).toMatchObject({ ok: true, error: null });
    expect(r.detail).toContain(`127.0.0.1:${pg.port}/postgres`);
    expect(JSON.stringify(r)).not.toContain(PASSWORD);
    expect(JSON.stringify(r)).not.toContain(encodeURIComponent(PASSWORD));
  });

  test('a host name that does not resolve is ENOTFOUND (EAI_AGAIN without DNS)', async () => {
    const r = await attempt({ type: 'postgres', url: `postgres://u:pw-x@no-such-host.invalid:5432/db` }, ctx());
    expect(r.ok).toBe(false);
    expect(['ENOTFOUND', 'EAI_AGAIN']).toContain(r.error?.code);
    expect(JSON.stringify(r)).not.toContain('pw-x');
  });

  test('nothing listening is ECONNREFUSED', async () => {
    const port = await freePort();
    const r = await attempt({ type: 'postgres', url: pg.url.replace(`:${pg.port}/`, `:${port}/`) }, ctx());
    expect(r.ok).toBe(false);
    expect(r.error?.code).toBe('ECONNREFUSED');
    expect(JSON.stringify(r)).not.toContain(PASSWORD);
  });

  test('a server still in recovery is PG_STARTING_UP (SQLSTATE 57P03)', async () => {
    const r = await attempt({ type: 'postgres', url: standby.url }, ctx());
    expect(r.ok).toBe(false);
    expect(r.error?.code).toBe('PG_STARTING_UP');
    expect(r.error?.message).toMatch(/not accepting connections|starting up/);
    expect(r.error?.message).toContain('57P03');
  });

  test('a wrong password is PG_AUTH_FAILED and neither password appears anywhere', async () => {
    const r = await attempt({ type: 'postgres', url: pg.urlFor({ password: WRONG }) }, ctx());
    expect(r.ok).toBe(false);
    expect(r.error?.code).toBe('PG_AUTH_FAILED');
    expect(r.error?.message).toContain('password authentication failed');
    const json = JSON.stringify(r);
    expect(json).not.toContain(WRONG);
    expect(json).not.toContain(PASSWORD);
  });

  test('no password where one is required is PG_AUTH_FAILED', async () => {
    const r = await attempt({ type: 'postgres', url: `postgres://postgres@127.0.0.1:${pg.port}/postgres` }, ctx());
    expect(r.error?.code).toBe('PG_AUTH_FAILED');
  });

  test('a missing database is PG_DB_MISSING', async () => {
    const r = await attempt({ type: 'postgres', url: pg.urlFor({ database: 'no_such_db' }) }, ctx());
    expect(r.ok).toBe(false);
    expect(r.error?.code).toBe('PG_DB_MISSING');
    expect(r.error?.message).toContain('no_such_db');
    expect(JSON.stringify(r)).not.toContain(PASSWORD);
  });

  test('sslmode=require against a server without TLS fails and says why', async () => {
    const r = await attempt({ type: 'postgres', url: pg.urlFor({ params: { sslmode: 'require' } }) }, ctx());
    expect(r.ok).toBe(false);
    expect(r.error?.code).toBe('PG_SSL_UNSUPPORTED');
    expect(r.error?.message).toContain('sslmode=require');
  });

  test.each(['disable', 'prefer'])('sslmode=%s connects in plain text', async (sslmode) => {
    const r = await attempt({ type: 'postgres', url: pg.urlFor({ params: { sslmode } }) }, ctx());
    expect(r).toMatchObject({ ok: true, error: null });
    expect(r.detail).not.toContain('TLS');
  });

  test('a server that accepts TCP but never speaks costs one attempt timeout and the socket is closed', async () => {
    const silent: SilentServer = await startSilentServer();
    try {
      const t0 = performance.now();
      const r = await attempt({ type: 'postgres', url: `postgres://u:${encodeURIComponent(PASSWORD)}@127.0.0.1:${silent.port}/db` }, ctx(300));
      const took = performance.now() - t0;
      expect(r.ok).toBe(false);
      expect(r.error?.code).toBe('ETIMEDOUT');
      expect(r.error?.message).toContain('startup handshake');
      expect(took).toBeLessThan(3000);
      expect(silent.accepted).toBe(1);
      await silent.waitAllClosed(2000);
      expect(JSON.stringify(r)).not.toContain(PASSWORD);
    } finally {
      await silent.stop();
    }
  });

  test('cancelling through ctx.signal releases the socket at once', async () => {
    const silent = await startSilentServer();
    try {
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 100);
      const t0 = performance.now();
      const r = await attempt({ type: 'postgres', url: `postgres://u@127.0.0.1:${silent.port}/db` }, { signal: controller.signal, timeoutMs: 30_000 });
      expect(r.ok).toBe(false);
      expect(r.error?.code).toBe('ABORTED');
      expect(performance.now() - t0).toBeLessThan(3000);
      await silent.waitAllClosed(2000);
    } finally {
      await silent.stop();
    }
  });

  test('polled: a server that comes back while the check waits is reported ready', async () => {
    await pg.halt();
    const polling = pollCheck(spec(pg.url, { timeoutMs: 60_000 }));
    const restarted = new Promise<void>((resolve, reject) => setTimeout(() => pg.start().then(resolve, reject), 500));
    const [outcome] = await Promise.all([polling, restarted]);
    expect(outcome.status).toBe('ready');
    expect(outcome.attempts).toBeGreaterThan(1);
    expect(JSON.stringify(outcome)).not.toContain(PASSWORD);
  });

  test('polled: a server stuck starting up times out naming PG_STARTING_UP', async () => {
    const outcome = await pollCheck(spec(standby.url, { timeoutMs: 1000, intervalMs: 100 }));
    expect(outcome.status).toBe('failed');
    expect(outcome.error?.code).toBe('PG_STARTING_UP');
    expect(outcome.error?.message).toContain('check "db"');
  });
});

describe.skipIf(!avail.ok)('postgres check over TLS', () => {
  let pg: PostgresHandle;
  beforeAll(async () => {
    pg = await startPostgres({ ssl: true, password: PASSWORD });
  });
  afterAll(async () => {
    await pg?.stop();
  });

  test('sslmode=require encrypts without verifying the certificate', async () => {
    const r = await attempt({ type: 'postgres', url: pg.urlFor({ params: { sslmode: 'require' } }) }, ctx());
    expect(r).toMatchObject({ ok: true, error: null });
    expect(r.detail).toContain('TLS sslmode=require');
  });

  test('sslmode=verify-full refuses a self-signed certificate', async () => {
    const r = await attempt({ type: 'postgres', url: pg.urlFor({ params: { sslmode: 'verify-full' } }) }, ctx());
    expect(r.ok).toBe(false);
    expect(r.error?.code).toBe('TLS_UNTRUSTED');
  });

  test('sslmode=verify-full with sslrootcert accepts it', async () => {
    const r = await attempt({ type: 'postgres', url: pg.urlFor({ params: { sslmode: 'verify-full', sslrootcert: pg.caFile! } }) }, ctx());
    expect(r).toMatchObject({ ok: true, error: null });
  });
});
