// One MySQL/MariaDB attempt: a new connection from the URL, `SELECT 1`, close.
// Loaded lazily by the registry, so importing mysql2 here costs nothing until a recipe uses mysql.
import { readFile } from 'node:fs/promises';
import type { Duplex } from 'node:stream';
import mysql from 'mysql2';
import type { AttemptError, AttemptFn, AttemptResult } from './types.js';
import type { UrlProbe } from '../recipe/types.js';
import { Redactor } from '../redact.js';
import { abortError, errorCode, raceDeadline } from './deadline.js';

interface Target {
  label: string;
  user: string;
  /** Knows the URL's password (raw and decoded); every message passes through it. */
  secrets: Redactor;
  options: mysql.ConnectionOptions;
  sslMode: string;
  sslCa?: string;
}

function parseTarget(url: string): Target {
  const u = new URL(url);
  const secrets = new Redactor();
  secrets.addUrl(url);
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : decodeURIComponent(u.hostname || 'localhost');
  const port = u.port ? Number(u.port) : 3306;
  const database = decodeURIComponent(u.pathname.slice(1));
  const user = decodeURIComponent(u.username);
  const q = u.searchParams;
  const sslMode = (q.get('ssl-mode') ?? q.get('sslmode') ?? (q.get('ssl') === 'true' ? 'REQUIRED' : 'DISABLED'))
    .toUpperCase()
    .replace('-', '_');
  const sslCa = q.get('ssl-ca') ?? q.get('sslrootcert') ?? undefined;
  return {
    label: `${u.hostname || 'localhost'}:${port}${database ? `/${database}` : ''}`,
    user,
    secrets,
    sslMode,
    ...(sslCa ? { sslCa } : {}),
    options: {
      host,
      port,
      user,
      password: decodeURIComponent(u.password),
      ...(database ? { database } : {}),
    },
  };
}

async function sslOptions(t: Target): Promise<mysql.SslOptions | undefined> {
  switch (t.sslMode) {
    case 'DISABLED':
    case 'PREFERRED':
      return undefined;
    case 'REQUIRED':
    case 'REQUIRE':
      return { rejectUnauthorized: false };
    case 'VERIFY_CA':
    case 'VERIFY_IDENTITY':
    case 'VERIFY_FULL': {
      let ca: string | undefined;
      try {
        if (t.sslCa) ca = await readFile(t.sslCa, 'utf8');
      } catch (err) {
        throw Object.assign(new Error(`cannot read TLS file: ${(err as Error).message}`), { code: 'TLS_CONFIG' });
      }
      return {
        rejectUnauthorized: true,
        ...(ca ? { ca } : {}),
        ...(t.sslMode === 'VERIFY_CA' ? { checkServerIdentity: () => undefined } : {}),
      };
    }
    default:
      throw Object.assign(new Error(`unknown ssl-mode "${t.sslMode}" (use DISABLED, REQUIRED, VERIFY_CA or VERIFY_IDENTITY)`), {
        code: 'TLS_CONFIG',
      });
  }
}


function classify(err: unknown): AttemptError {
  const message = err instanceof Error ? err.message : String(err);
  const code = errorCode(err);
  const errno = (err as { errno?: unknown }).errno;
  const withErrno = typeof errno === 'number' ? `${message} (${code} ${errno})` : message;
  switch (code) {
    case 'ER_ACCESS_DENIED_ERROR':
    case 'ER_ACCESS_DENIED_NO_PASSWORD_ERROR':
    case 'ER_NOT_SUPPORTED_AUTH_MODE':
      return { code: 'MYSQL_AUTH_FAILED', message: withErrno };
    case 'ER_HOST_NOT_PRIVILEGED':
    case 'ER_HOST_IS_BLOCKED':
      return { code: 'MYSQL_HOST_NOT_ALLOWED', message: withErrno };
    case 'ER_BAD_DB_ERROR':
      return { code: 'MYSQL_DB_MISSING', message: withErrno };
    // The server says this both for a database that does not exist and one the user may not use.
    case 'ER_DBACCESS_DENIED_ERROR':
      return { code: 'MYSQL_DB_ACCESS_DENIED', message: `${withErrno} – the database is missing or not granted to this user` };
    case 'ER_CON_COUNT_ERROR':
    case 'ER_TOO_MANY_USER_CONNECTIONS':
      return { code: 'MYSQL_TOO_MANY_CONNECTIONS', message: withErrno };
    case 'ER_SERVER_SHUTDOWN':
      return { code: 'MYSQL_SHUTTING_DOWN', message: withErrno };
    case 'HANDSHAKE_NO_SSL_SUPPORT':
      return { code: 'MYSQL_SSL_UNSUPPORTED', message: 'the server does not support TLS, but the URL asks for it' };
    case 'PROTOCOL_CONNECTION_LOST':
      return { code: 'ECONNRESET', message: 'the server closed the connection' };
    case 'TLS_CONFIG':
      return { code, message };
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'CERT_HAS_EXPIRED':
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return { code: 'TLS_UNTRUSTED', message: `TLS certificate not trusted: ${message}` };
  }
  if (code?.startsWith('ER_')) return { code: 'MYSQL_ERROR', message: withErrno };
  return { code: code ?? 'MYSQL_ERROR', message };
}

export const attempt: AttemptFn<UrlProbe> = async (probe, ctx) => {
  let t: Target;
  try {
    t = parseTarget(probe.url);
  } catch {
    return { ok: false, detail: 'mysql: invalid URL', error: { code: 'INVALID_URL', message: 'the mysql URL cannot be parsed' } };
  }
  const fail = (error: AttemptError): AttemptResult => {
    const safe = { code: error.code, message: t.secrets.redact(error.message) };
    return { ok: false, detail: `mysql ${t.label}: ${safe.message}`, error: safe };
  };
  if (ctx.signal.aborted) return fail({ code: 'ABORTED', message: 'attempt cancelled before it started' });

  let ssl: mysql.SslOptions | undefined;
  try {
    ssl = await sslOptions(t);
  } catch (err) {
    return fail(classify(err));
  }

  // The driver's own connect timer is a backstop; our deadline below fires first and names the stage.
  const conn = mysql.createConnection({ ...t.options, ...(ssl ? { ssl } : {}), connectTimeout: ctx.timeoutMs + 1000 });
  conn.on('error', () => undefined);
  const socket = socketOf(conn);
  let stage = 'connecting';
  socket.once('connect', () => {
    stage = 'waiting for the server handshake';
  });

  const work = new Promise<void>((resolve, reject) => {
    conn.connect((err) => {
      if (err) return reject(err);
      stage = 'running SELECT 1';
      conn.query('SELECT 1', (qerr) => (qerr ? reject(qerr) : resolve()));
    });
  });
  // mysql2's destroy() only half-closes; destroying the socket releases it now.
  const raced = await raceDeadline(ctx, () => (socketOf(conn).destroy(), socket.destroy()), work);
  try {
    if (raced.outcome === 'aborted') return fail(abortError(ctx.timeoutMs, raced.elapsedMs, stage));
    if (raced.outcome === 'failed') return fail(classify(raced.error));
    const tls = ssl ? `, TLS ssl-mode=${t.sslMode}` : '';
    return { ok: true, detail: `mysql ${t.label}: SELECT 1 ok as ${t.user || 'anonymous'}${tls}`, error: null };
  } finally {
    await closeConnection(conn);
    socket.destroy();
  }
};

/** mysql2 keeps its socket (TCP, or TLS once upgraded) on `stream`; its typings do not declare it. */
function socketOf(conn: mysql.Connection): Duplex {
  return (conn as unknown as { stream: Duplex }).stream;
}

/** Sends QUIT when the connection is healthy, but never waits more than a moment for it. */
async function closeConnection(conn: mysql.Connection): Promise<void> {
  const stream = socketOf(conn);
  if (!stream.destroyed) {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      new Promise<void>((resolve) => conn.end(() => resolve())),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, 200);
      }),
    ]);
    clearTimeout(timer);
  }
  stream.destroy();
}

