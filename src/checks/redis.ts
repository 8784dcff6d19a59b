// One Redis attempt: a new connection (TLS for rediss://), AUTH when the URL carries a password,
// SELECT the URL's database, PING → PONG, close. Loaded lazily by the registry, so importing ioredis
// here costs nothing until a recipe uses redis.
import { isIP } from 'node:net';
import { Redis } from 'ioredis';
import type { AttemptError, AttemptFn, AttemptResult } from './types.js';
import type { UrlProbe } from '../recipe/types.js';
import { Redactor } from '../redact.js';
import { abortError, errorCode, raceDeadline } from './deadline.js';

interface Target {
  label: string;
  host: string;
  port: number;
  tls: boolean;
  username?: string;
  password?: string;
  db: number;
  /** Knows the URL's password (raw and decoded); every message passes through it. */
  secrets: Redactor;
}

function parseTarget(url: string): Target {
  const u = new URL(url);
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new Error('not a redis:// or rediss:// URL');
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : decodeURIComponent(u.hostname || '127.0.0.1');
  const port = u.port ? Number(u.port) : 6379;
  const dbText = u.pathname.slice(1) || u.searchParams.get('db') || '0';
  const db = Number(dbText);
  if (!Number.isInteger(db) || db < 0) throw new Error(`database "${dbText}" is not a number`);
  const username = decodeURIComponent(u.username);
  const password = decodeURIComponent(u.password);
  const secrets = new Redactor();
  secrets.addUrl(url);
  return {
    label: `${u.hostname || host}:${port}/${db}`,
    host,
    port,
    tls: u.protocol === 'rediss:',
    ...(username ? { username } : {}),
    ...(password ? { password } : {}),
    db,
    secrets,
  };
}


function classify(err: unknown, t: Target): AttemptError {
  const message = err instanceof Error ? err.message : String(err);
  if ((err as Error)?.name === 'ReplyError') {
    const prefix = message.split(' ', 1)[0] ?? '';
    if (prefix === 'LOADING') return { code: 'REDIS_LOADING', message };
    if (prefix === 'NOAUTH') {
      return { code: 'REDIS_AUTH_FAILED', message: `${message}${t.password ? '' : ' – the URL carries no password'}` };
    }
    if (prefix === 'WRONGPASS' || /invalid password|AUTH.*without any password/i.test(message)) {
      return { code: 'REDIS_AUTH_FAILED', message };
    }
    if (/DB index is out of range/i.test(message)) return { code: 'REDIS_DB_INVALID', message: `${message} (db ${t.db})` };
    if (prefix === 'BUSY' || prefix === 'MASTERDOWN' || prefix === 'MISCONF') return { code: `REDIS_${prefix}`, message };
    return { code: 'REDIS_ERROR', message };
  }
  const code = errorCode(err);
  if (code && /CERT|ERR_TLS_CERT_ALTNAME_INVALID/.test(code)) {
    return { code: 'TLS_UNTRUSTED', message: `TLS certificate not trusted: ${message}` };
  }
  if (/Connection is closed/i.test(message)) return { code: 'ECONNRESET', message: 'the server closed the connection' };
  return { code: code ?? 'REDIS_ERROR', message };
}

export const attempt: AttemptFn<UrlProbe> = async (probe, ctx) => {
  let t: Target;
  try {
    t = parseTarget(probe.url);
  } catch (err) {
    const message = `the redis URL cannot be parsed${err instanceof TypeError ? '' : `: ${(err as Error).message}`}`;
    return { ok: false, detail: 'redis: invalid URL', error: { code: 'INVALID_URL', message } };
  }
  const fail = (error: AttemptError): AttemptResult => {
    const safe = { code: error.code, message: t.secrets.redact(error.message) };
    return { ok: false, detail: `redis ${t.label}: ${safe.message}`, error: safe };
  };
  if (ctx.signal.aborted) return fail({ code: 'ABORTED', message: 'attempt cancelled before it started' });

  // One connection, one try: no reconnects, no queued retries, no ready check (it would wait out LOADING).
  // AUTH and SELECT are sent by us, not by ioredis, so their replies are reported as they are.
  const client = new Redis({
    host: t.host,
    port: t.port,
    family: 0,
    lazyConnect: true,
    enableReadyCheck: false,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    reconnectOnError: () => false,
    autoResubscribe: false,
    autoResendUnfulfilledCommands: false,
    disableClientInfo: true,
    // The driver's own connect timer is a backstop; our deadline below fires first and names the stage.
    connectTimeout: ctx.timeoutMs + 1000,
    disconnectTimeout: 100,
    ...(t.tls ? { tls: isIP(t.host) ? {} : { servername: t.host } } : {}),
  });
  // ioredis reports socket errors as events and then rejects with a generic "Connection is closed".
  let lastSocketError: unknown;
  client.on('error', (err: unknown) => {
    lastSocketError ??= err;
  });
  let stage = t.tls ? 'connecting (TCP and TLS handshake)' : 'connecting';

  const work = (async () => {
    try {
      await client.connect();
    } catch (err) {
      throw lastSocketError ?? err;
    }
    if (t.password !== undefined) {
      stage = 'waiting for the AUTH reply';
      if (t.username) await client.auth(t.username, t.password);
      else await client.auth(t.password);
    }
    if (t.db !== 0) {
      stage = `waiting for the SELECT ${t.db} reply`;
      await client.select(t.db);
    }
    stage = 'waiting for PONG';
    return client.ping();
  })();
  const raced = await raceDeadline(ctx, () => destroy(client), work);
  try {
    if (raced.outcome === 'aborted') return fail(abortError(ctx.timeoutMs, raced.elapsedMs, stage));
    if (raced.outcome === 'failed') return fail(classify(raced.error, t));
    if (raced.value !== 'PONG') return fail({ code: 'REDIS_UNEXPECTED_REPLY', message: `PING answered "${String(raced.value).slice(0, 100)}", not PONG` });
    return { ok: true, detail: `redis ${t.label}: PONG${t.tls ? ' over TLS' : ''}`, error: null };
  } finally {
    destroy(client);
  }
};

/** Closes the connection at once, whatever state it is in (ioredis' disconnect() only half-closes). */
function destroy(client: Redis): void {
  client.disconnect();
  (client.stream as { destroy?: () => void } | undefined)?.destroy?.();
}

