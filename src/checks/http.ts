// One http(s) attempt on a fresh connection: status, body, redirects and TLS judged, every failure with a stable code.
// node:http/https rather than fetch: fetch hides TLS error codes behind a generic cause, pools connections, and loads undici at start.
import http from 'node:http';
import https from 'node:https';
import { readFile } from 'node:fs/promises';
import { isIP, type LookupFunction } from 'node:net';
import type { HttpProbe } from '../recipe/types.js';
import { systemResolver } from './resolve.js';
import type { AttemptContext, AttemptError, AttemptFn, AttemptResult, HttpEvidence, Resolver } from './types.js';

const MAX_BODY_BYTES = 64 * 1024;
const SNIPPET_CHARS = 512;
const MAX_REDIRECTS = 5;
const HIDDEN_HEADERS = new Set(['set-cookie', 'authorization', 'proxy-authorization', 'cookie']);

const TLS_UNTRUSTED = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
]);

interface Response {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

type Phase = 'resolving' | 'connecting' | 'awaiting headers' | 'reading body';

class AttemptFailure extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export const attempt: AttemptFn<HttpProbe> = async (probe, ctx) => {
  const addresses: string[] = [];
  let url: URL;
  try {
    url = parseUrl(probe.url);
  } catch (error) {
    return failure((error as AttemptFailure).code ?? 'INVALID_URL', (error as Error).message, addresses);
  }
  let ca: Buffer | undefined;
  if (probe.ca !== undefined) {
    try {
      ca = await readFile(probe.ca);
    } catch (error) {
      return failure('CA_UNREADABLE', `cannot read ca file ${probe.ca}: ${(error as Error).message}`, addresses);
    }
  }
  const originalOrigin = url.origin;
  try {
    for (let redirects = 0; ; redirects += 1) {
      const sameOrigin = url.origin === originalOrigin;
      const res = await request(url, probe, ctx, { ca, addresses, sameOrigin });
      const evidence = toEvidence(res);
      const isRedirect = res.status >= 300 && res.status < 400 && !statusAccepted(probe, res.status);
      if (!isRedirect) return judge(probe, url, res, evidence, addresses);
      const location = res.headers.location;
      if (!probe.followRedirects) {
        const message = `HTTP ${res.status} from ${url.href} redirects to ${location ?? '(no Location)'}; set follow_redirects: true or accept ${res.status}`;
        return failure('REDIRECT_NOT_FOLLOWED', message, addresses, evidence);
      }
      if (redirects >= MAX_REDIRECTS) {
        return failure('TOO_MANY_REDIRECTS', `more than ${MAX_REDIRECTS} redirects, last from ${url.href}`, addresses, evidence);
      }
      if (!location) return failure('HTTP_STATUS', `HTTP ${res.status} from ${url.href} without a Location header`, addresses, evidence);
      try {
        url = parseUrl(new URL(location, url).href);
      } catch (error) {
        return failure('REDIRECT_INVALID', `HTTP ${res.status} from ${url.href} redirects to ${location}: ${(error as Error).message}`, addresses, evidence);
      }
    }
  } catch (error) {
    if (error instanceof AttemptFailure) return failure(error.code, error.message, addresses);
    throw error;
  }
};

function judge(probe: HttpProbe, url: URL, res: Response, evidence: HttpEvidence, addresses: string[]): AttemptResult {
  if (!statusAccepted(probe, res.status)) {
    const message = `HTTP ${res.status} from ${url.href} (expected ${formatRanges(probe.status)})`;
    return failure('HTTP_STATUS', message, addresses, evidence);
  }
  if (probe.body && probe.method !== 'HEAD') {
    const text = res.body.toString('utf8');
    if ('contains' in probe.body) {
      if (!text.includes(probe.body.contains)) {
        return failure('BODY_MISMATCH', `body of ${url.href} (HTTP ${res.status}) does not contain ${JSON.stringify(probe.body.contains)}`, addresses, evidence);
      }
    } else {
      let re: RegExp;
      try {
        re = new RegExp(probe.body.regex);
      } catch (error) {
        return failure('BAD_REGEX', `body regex ${JSON.stringify(probe.body.regex)} is invalid: ${(error as Error).message}`, addresses, evidence);
      }
      if (!re.test(text)) {
        return failure('BODY_MISMATCH', `body of ${url.href} (HTTP ${res.status}) does not match /${probe.body.regex}/`, addresses, evidence);
      }
    }
  }
  return { ok: true, detail: `HTTP ${res.status} from ${url.href}`, error: null, addresses, http: evidence };
}

function request(
  url: URL,
  probe: HttpProbe,
  ctx: AttemptContext,
  opts: { ca: Buffer | undefined; addresses: string[]; sameOrigin: boolean },
): Promise<Response> {
  return new Promise<Response>((resolve, reject) => {
    if (ctx.signal.aborted) return reject(timeoutFailure('connecting', url, ctx));
    // a DNS answer that never comes is not a connect timeout: say which one ran out
    let phase: Phase = isIP(url.hostname.replace(/^\[|\]$/g, '')) ? 'connecting' : 'resolving';
    let settled = false;
    const mod = url.protocol === 'https:' ? https : http;
    // Credentials given for the configured origin are not handed to another origin a redirect points at.
    const headers = opts.sameOrigin ? probe.headers : dropCredentials(probe.headers);
    const options: https.RequestOptions = {
      method: probe.method,
      headers,
      agent: false,
      // never node's default (getaddrinfo in the threadpool, which nothing can cancel)
      lookup: lookupVia(ctx.resolver ?? systemResolver, ctx.signal),
      ...(url.protocol === 'https:' ? { rejectUnauthorized: !probe.insecure, ...(opts.ca ? { ca: opts.ca } : {}) } : {}),
    };
    const req = mod.request(url, options);
    const finish = (error: Error | null, value?: Response): void => {
      if (settled) return;
      settled = true;
      ctx.signal.removeEventListener('abort', onAbort);
      req.destroy();
      if (error) reject(error);
      else resolve(value as Response);
    };
    const onAbort = (): void => finish(timeoutFailure(phase, url, ctx));
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    req.on('socket', (socket) => {
      socket.once('lookup', () => {
        if (phase === 'resolving') phase = 'connecting';
      });
      socket.once('connect', () => {
        if (socket.remoteAddress) opts.addresses.push(formatHostPort(socket.remoteAddress, socket.remotePort ?? 0));
      });
      // For https the handshake belongs to connecting: a server stuck in it has not been "asked" yet.
      socket.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', () => {
        if (phase === 'connecting') phase = 'awaiting headers';
      });
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      recordErrorAddresses(err, opts.addresses);
      finish(classify(err, url, phase, ctx));
    });
    req.on('response', (res) => {
      phase = 'reading body';
      const chunks: Buffer[] = [];
      let size = 0;
      const done = (): void => finish(null, { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks, size) });
      res.on('data', (chunk: Buffer) => {
        const room = MAX_BODY_BYTES - size;
        chunks.push(chunk.length > room ? chunk.subarray(0, room) : chunk);
        size += Math.min(chunk.length, room);
        if (size >= MAX_BODY_BYTES) done();
      });
      res.on('end', done);
      res.on('error', (err: NodeJS.ErrnoException) => finish(classify(err, url, phase, ctx)));
      res.on('aborted', () => finish(new AttemptFailure('ECONNRESET', `connection to ${url.host} reset while reading the body`)));
    });
    req.end();
  });
}

function timeoutFailure(phase: Phase, url: URL, ctx: AttemptContext): AttemptFailure {
  const limit = `${ctx.timeoutMs}ms`;
  if (phase === 'resolving') return new AttemptFailure('ETIMEDOUT', `resolving "${url.hostname}" timed out after ${limit}`);
  if (phase === 'connecting') return new AttemptFailure('ETIMEDOUT', `connect to ${url.host} timed out after ${limit}`);
  if (phase === 'awaiting headers') return new AttemptFailure('ETIMEDOUT', `no response from ${url.href} within ${limit} (connected, request sent)`);
  return new AttemptFailure('ETIMEDOUT', `body of ${url.href} not complete within ${limit} (headers received)`);
}

function classify(err: NodeJS.ErrnoException, url: URL, phase: Phase, ctx: AttemptContext): AttemptFailure {
  if (ctx.signal.aborted || err.name === 'AbortError') return timeoutFailure(phase, url, ctx);
  const code = err.code ?? '';
  if (TLS_UNTRUSTED.has(code)) return new AttemptFailure('TLS_UNTRUSTED', `TLS certificate of ${url.host} is not trusted (${code}: ${err.message}); give its CA with ca: or set insecure: true`);
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return new AttemptFailure('TLS_HOSTNAME', `TLS certificate does not match ${url.hostname}: ${err.message}`);
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') return new AttemptFailure('TLS_EXPIRED', `TLS certificate of ${url.host}: ${err.message} (${code})`);
  if (code.startsWith('ERR_SSL') || code === 'EPROTO' || code.startsWith('ERR_TLS')) return new AttemptFailure('TLS_ERROR', `TLS handshake with ${url.host} failed: ${err.message}`);
  if (code === 'ECONNRESET') return new AttemptFailure('ECONNRESET', `connection to ${url.host} reset (${phase}): ${err.message}`);
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return new AttemptFailure(code, `cannot resolve "${url.hostname}": ${err.message}`);
  if (code.startsWith('HPE_')) return new AttemptFailure('HTTP_PARSE_ERROR', `invalid HTTP response from ${url.host}: ${err.message}`);
  if (err instanceof AggregateError) {
    const first = err.errors[0] as NodeJS.ErrnoException | undefined;
    if (first) return classify(first, url, phase, ctx);
  }
  return new AttemptFailure(code || 'HTTP_ERROR', `${url.href}: ${err.message}`);
}

function recordErrorAddresses(err: NodeJS.ErrnoException & { address?: string; port?: number }, addresses: string[]): void {
  const all = err instanceof AggregateError ? (err.errors as Array<{ address?: string; port?: number }>) : [err];
  for (const e of all) {
    if (typeof e.address === 'string') addresses.push(formatHostPort(e.address, e.port ?? 0));
  }
}

function parseUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new AttemptFailure('INVALID_URL', `invalid URL ${JSON.stringify(text)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new AttemptFailure('INVALID_URL', `only http and https URLs are supported (got ${url.protocol})`);
  return url;
}

function statusAccepted(probe: HttpProbe, status: number): boolean {
  return probe.status.some(([low, high]) => status >= low && status <= high);
}

function formatRanges(ranges: Array<[number, number]>): string {
  return ranges
    .map(([low, high]) => (low === high ? String(low) : low % 100 === 0 && high === low + 99 ? `${low / 100}xx` : `${low}-${high}`))
    .join(', ');
}

function toEvidence(res: Response): HttpEvidence {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(res.headers)) {
    if (value === undefined) continue;
    headers[name] = HIDDEN_HEADERS.has(name) ? '[hidden]' : Array.isArray(value) ? value.join(', ') : value;
  }
  return { status: res.status, headers, bodySnippet: res.body.toString('utf8').slice(0, SNIPPET_CHARS) };
}

function failure(code: string, message: string, addresses: string[], evidence?: HttpEvidence): AttemptResult {
  return { ok: false, detail: message, error: { code, message } satisfies AttemptError, addresses, ...(evidence ? { http: evidence } : {}) };
}

function dropCredentials(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).filter(([k]) => !HIDDEN_HEADERS.has(k.toLowerCase())));
}

function formatHostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

// Adapts a Resolver to the dns.lookup shape node:http expects (with and without { all: true }, family 4 or 6).
function lookupVia(resolver: Resolver, signal: AbortSignal): LookupFunction {
  return (hostname, options, callback) => {
    const family = (options as { family?: number | string }).family;
    const wanted = family === 4 || family === 'IPv4' ? 4 : family === 6 || family === 'IPv6' ? 6 : 0;
    resolver(hostname, { signal }).then(
      (all) => {
        const list = wanted === 0 ? all : all.filter((a) => a.family === wanted);
        const first = list[0];
        if (!first) {
          const err = Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
          callback(err as NodeJS.ErrnoException, '', 0);
        } else if ((options as { all?: boolean }).all) {
          (callback as unknown as (e: null, a: typeof list) => void)(null, list);
        } else {
          callback(null, first.address, first.family);
        }
      },
      (error: NodeJS.ErrnoException) => callback(error, '', 0),
    );
  };
}
