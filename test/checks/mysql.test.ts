import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { attempt } from '../../src/checks/mysql.js';
import type { AttemptContext } from '../../src/checks/types.js';
import { pollCheck } from '../../src/poll.js';
import type { CheckSpec } from '../../src/recipe/types.js';
import { attemptContext, checkSpec } from '../support/checks.js';
import { freePort, serverAvailability, startMariadb, startSilentServer, type MariadbHandle } from '../support/servers.js';

const PASSWORD = 'My-s3cret/with:odd@chars';
const WRONG = 'wr0ng-Passw0rd-plugh';

const avail = serverAvailability('mariadb');
if (!avail.ok) console.warn(avail.message);

function ctx(timeoutMs = 5000): AttemptContext {
  return attemptContext(timeoutMs);
}

function spec(url: string, timing: Partial<CheckSpec> = {}): CheckSpec {
  return checkSpec({ type: 'mysql', url }, timing);
}

describe.skipIf(!avail.ok)('mysql check (MariaDB)', () => {
  let db: MariadbHandle;
  beforeAll(async () => {
    db = await startMariadb({ password: PASSWORD });
  });
  afterAll(async () => {
    await db?.stop();
  });

  test('a running server answers SELECT 1', async () => {
    const r = await attempt({ type: 'mysql', url: db.url }, ctx());
    expect(r).toMatchObject({ ok: true, error: null });
    expect(r.detail).toContain(`127.0.0.1:${db.port}/app`);
    expect(JSON.stringify(r)).not.toContain(PASSWORD);
  });

  test('a host name that does not resolve is ENOTFOUND (EAI_AGAIN without DNS)', async () => {
    const r = await attempt({ type: 'mysql', url: `mysql://u:pw-x@no-such-host.invalid:3306/db` }, ctx());
    expect(r.ok).toBe(false);
    expect(['ENOTFOUND', 'EAI_AGAIN']).toContain(r.error?.code);
    expect(JSON.stringify(r)).not.toContain('pw-x');
  });

  test('nothing listening is ECONNREFUSED', async () => {
    const port = await freePort();
    const r = await attempt({ type: 'mysql', url: db.url.replace(`:${db.port}/`, `:${port}/`) }, ctx());
    expect(r.ok).toBe(false);
    expect(r.error?.code).toBe('ECONNREFUSED');
  });

  test('a wrong password is MYSQL_AUTH_FAILED and neither password appears anywhere', async () => {
    const r = await attempt({ type: 'mysql', url: db.urlFor({ password: WRONG }) }, ctx());
    expect(r.ok).toBe(false);
    expect(r.error?.code).toBe('MYSQL_AUTH_FAILED');
    expect(r.error?.message).toContain('Access denied');
    const json = JSON.stringify(r);
    expect(json).not.toContain(WRONG);
    expect(json).not.toContain(PASSWORD);
  });

  test('a missing database is MYSQL_DB_MISSING', async () => {
    const r = await attempt({ type: 'mysql', url: db.urlFor({ database: 'no_such_db' }) }, ctx());
    expect(r.ok).toBe(false);
    expect(r.error?.code).toBe('MYSQL_DB_MISSING');
    expect(r.error?.message).toContain('no_such_db');
  });

  test('a database the user may not see is MYSQL_DB_ACCESS_DENIED (the server hides whether it exists)', async () => {
    const r = await attempt({ type: 'mysql', url: db.urlFor({ user: 'limited', database: 'no_such_db' }) }, ctx());
    expect(r.error?.code).toBe('MYSQL_DB_ACCESS_DENIED');
  });

  test('a server that accepts TCP but never speaks costs one attempt timeout and the socket is closed', async () => {
    const silent = await startSilentServer();
    try {
      const t0 = performance.now();
      const r = await attempt({ type: 'mysql', url: `mysql://u:pw-x@127.0.0.1:${silent.port}/db` }, ctx(300));
      expect(r.ok).toBe(false);
      expect(r.error?.code).toBe('ETIMEDOUT');
      expect(r.error?.message).toContain('handshake');
      expect(performance.now() - t0).toBeLessThan(3000);
      await silent.waitAllClosed(2000);
    } finally {
      await silent.stop();
    }
  });

  test('polled: a wrong password keeps failing until the deadline and the report names the cause', async () => {
    const outcome = await pollCheck(spec(db.urlFor({ password: WRONG }), { timeoutMs: 800, intervalMs: 200 }));
    expect(outcome.status).toBe('failed');
    expect(outcome.attempts).toBeGreaterThan(1);
    expect(outcome.error?.code).toBe('MYSQL_AUTH_FAILED');
    expect(outcome.error?.message).toContain('check "db"');
    expect(JSON.stringify(outcome)).not.toContain(WRONG);
  });
});
