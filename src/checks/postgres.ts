// One PostgreSQL attempt: a new connection from the URL (sslmode honoured), `SELECT 1`, close.
// Loaded lazily by the registry, so importing `pg` here costs nothing until a recipe uses postgres.
import { readFile } from 'node:fs/promises';
import type { ConnectionOptions } from 'node:tls';
import pg from 'pg';
import type { AttemptError, AttemptFn, AttemptResult } from './types.js';
import type { UrlProbe } from '../recipe/types.js';
import { Redactor } from '../redact.js';
import { abortError, errorCode, raceDeadline } from './deadline.js';

// Parameters we interpret ourselves; pg's own parsing of them treats `prefer` as "TLS required".
const TLS_PARAMS = ['sslmode', 'ssl', 'sslcert', 'sslkey', 'sslrootcert', 'sslnegotiation', 'uselibpqcompat', 'sslpassword'];

const TLS_UNTRUSTED_CODES = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

interface Target {
  /** "127.0.0.1:5432/app" — no credentials. */
  label: string;
  user: string;
  /** Knows the URL's password (raw and decoded); every message passes through it. */
  secrets: Redactor;
  connectionString: string;
  sslmode: string;
  tls: { rootcert?: string; cert?: string; key?: string };
}

function parseTarget(url: string): Target {
  const u = new URL(url);
  const secrets = new Redactor();
  secrets.addUrl(url);
  const q = u.searchParams;
  const pwParam = q.get('password');
  if (pwParam) secrets.addSecret(pwParam);
  const sslmode = q.get('sslmode') ?? (q.get('ssl') === 'true' || q.get('ssl') === '1' ? 'require' : 'disable');
  const tls = {
    ...(q.get('sslrootcert') ? { rootcert: q.get('sslrootcert')! } : {}),
    ...(q.get('sslcert') ? { cert: q.get('sslcert')! } : {}),
    ...(q.get('sslkey') ? { key: q.get('sslkey')! } : {}),
  };
  for (const p of TLS_PARAMS) q.delete(p);
  const host = q.get('host') ?? (u.hostname ? decodeURIComponent(u.hostname) : 'localhost');
  const port = q.get('port') ?? (u.port || '5432');
  const database = decodeURIComponent(u.pathname.slice(1)) || decodeURIComponent(u.username) || 'postgres';
  const user = decodeURIComponent(u.username) || q.get('user') || process.env.PGUSER || '';
  return { label: `${host}:${port}/${database}`, user, secrets, connectionString: u.toString(), sslmode, tls };
}

async function tlsOptions(t: Target): Promise<false | ConnectionOptions> {
  switch (t.sslmode) {
    case 'disable':
    case 'allow':
    case 'prefer':
      return false;
    case 'require':
    case 'verify-ca':
    case 'verify-full':
      break;
    default:
      throw Object.assign(new Error(`unknown sslmode "${t.sslmode}" (use disable, prefer, require, verify-ca or verify-full)`), {
        code: 'TLS_CONFIG',
      });
  }
  const files: ConnectionOptions = {};
  try {
    if (t.tls.rootcert) files.ca = await readFile(t.tls.rootcert, 'utf8');
    if (t.tls.cert) files.cert = await readFile(t.tls.cert, 'utf8');
    if (t.tls.key) files.key = await readFile(t.tls.key, 'utf8');
  } catch (err) {
    throw Object.assign(new Error(`cannot read TLS file: ${(err as Error).message}`), { code: 'TLS_CONFIG' });
  }
  // libpq semantics: require checks nothing unless a root certificate is given (then it behaves as verify-ca).
  if (t.sslmode === 'require' && !files.ca) return { ...files, rejectUnauthorized: false };
  if (t.sslmode === 'verify-full') return { ...files, rejectUnauthorized: true };
  return { ...files, rejectUnauthorized: true, checkServerIdentity: () => undefined };
}


function classify(err: unknown, t: Target): AttemptError {
  const message = err instanceof Error ? err.message : String(err);
  const code = errorCode(err);
  if (err instanceof pg.DatabaseError) {
    switch (code) {
      case '57P03':
        if (/shutting down/i.test(message)) return { code: 'PG_SHUTTING_DOWN', message: `${message} (SQLSTATE 57P03)` };
        return { code: 'PG_STARTING_UP', message: `${message}${err.detail ? ` – ${err.detail}` : ''} (SQLSTATE 57P03)` };
      case '28P01':
      case '28000':
        return { code: 'PG_AUTH_FAILED', message: `${message} (SQLSTATE ${code})` };
      case '3D000':
        return { code: 'PG_DB_MISSING', message: `${message} (SQLSTATE 3D000)` };
      case '53300':
        return { code: 'PG_TOO_MANY_CONNECTIONS', message: `${message} (SQLSTATE 53300)` };
      default:
        return { code: 'PG_ERROR', message: `${message} (SQLSTATE ${code ?? 'unknown'})` };
    }
  }
  if (/does not support SSL/i.test(message)) {
    return { code: 'PG_SSL_UNSUPPORTED', message: `the server does not support TLS, but the URL asks for sslmode=${t.sslmode}` };
  }
  if (code && TLS_UNTRUSTED_CODES.has(code)) {
    return { code: 'TLS_UNTRUSTED', message: `TLS certificate not trusted with sslmode=${t.sslmode}: ${message}` };
  }
  // pg's SCRAM/MD5 code throws plain Errors when the server wants a password the URL does not carry.
  if (/password must be|SASL|SCRAM/i.test(message)) {
    return { code: 'PG_AUTH_FAILED', message: `authentication failed: ${message}` };
  }
  if (code === 'TLS_CONFIG') return { code, message };
  if (/Connection terminated/i.test(message)) return { code: 'ECONNRESET', message: 'the server closed the connection' };
  return { code: code ?? 'PG_ERROR', message };
}

export const attempt: AttemptFn<UrlProbe> = async (probe, ctx) => {
  let t: Target;
  try {
    t = parseTarget(probe.url);
  } catch {
    return { ok: false, detail: 'postgres: invalid URL', error: { code: 'INVALID_URL', message: 'the postgres URL cannot be parsed' } };
  }
  const fail = (error: AttemptError): AttemptResult => {
    const safe = { code: error.code, message: t.secrets.redact(error.message) };
    return { ok: false, detail: `postgres ${t.label}: ${safe.message}`, error: safe };
  };
  if (ctx.signal.aborted) return fail({ code: 'ABORTED', message: 'attempt cancelled before it started' });

  let ssl: false | ConnectionOptions;
  try {
    ssl = await tlsOptions(t);
  } catch (err) {
    return fail(classify(err, t));
  }

  const client = new pg.Client({ connectionString: t.connectionString, ssl, application_name: 'safe-restart' });
  // Errors after a failed/aborted connect arrive as events; the attempt reports them from the promise instead.
  client.on('error', () => undefined);
  let stage = 'connecting';
  // pg swaps in a TLS socket after the SSLRequest; keep the TCP socket to destroy both.
  const raw = client.connection.stream;
  raw.once('connect', () => {
    stage = ssl ? 'waiting for the TLS/startup handshake' : 'waiting for the startup handshake';
  });

  const work = (async () => {
    await client.connect();
    stage = 'running SELECT 1';
    await client.query('SELECT 1');
  })();
  // Destroying the socket makes pending pg promises reject at once; nothing is left hanging.
  const raced = await raceDeadline(ctx, () => (client.connection.stream.destroy(), raw.destroy()), work);
  try {
    if (raced.outcome === 'aborted') return fail(abortError(ctx.timeoutMs, raced.elapsedMs, stage));
    if (raced.outcome === 'failed') return fail(classify(raced.error, t));
    const tls = ssl ? `, TLS sslmode=${t.sslmode}` : '';
    return { ok: true, detail: `postgres ${t.label}: SELECT 1 ok as ${t.user || 'default user'}${tls}`, error: null };
  } finally {
    await closeClient(client);
    raw.destroy();
  }
};

/** Says goodbye politely when the connection is healthy, but never waits more than a moment for it. */
async function closeClient(client: pg.Client): Promise<void> {
  const stream = client.connection.stream;
  if (!stream.destroyed) {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      client.end().catch(() => undefined),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, 200);
      }),
    ]);
    clearTimeout(timer);
  }
  stream.destroy();
}

