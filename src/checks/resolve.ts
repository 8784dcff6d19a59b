// The system resolver the way glibc's getaddrinfo works for `hosts: files dns`, but cancellable: IP literals as
// they are, then /etc/hosts, then DNS through c-ares (node:dns Resolver) with resolv.conf's search list, ndots,
// timeout and attempts, the answers ordered by glibc's default RFC 3484 policy. Why not dns.lookup: getaddrinfo
// runs in libuv's threadpool, cannot be cancelled, and even process.exit() waits for it (libuv joins its threads).
import type { LookupAddress } from 'node:dns';
import { Resolver as DnsResolver } from 'node:dns/promises';
import { readFile, stat } from 'node:fs/promises';
import net from 'node:net';
import { hostname as systemHostname } from 'node:os';
import type { LookupOptions, Resolver } from './types.js';

const HOSTS_PATH = '/etc/hosts';
const RESOLV_CONF_PATH = '/etc/resolv.conf';
// glibc's defaults and ceilings (resolv.h: RES_TIMEOUT, RES_DFLRETRY, RES_MAXRETRANS, RES_MAXRETRY, RES_MAXNDOTS)
const DEFAULT_TIMEOUT_S = 5;
const DEFAULT_ATTEMPTS = 2;
const MAX_TIMEOUT_S = 30;
const MAX_ATTEMPTS = 5;
const MAX_NDOTS = 15;
// Any port: a UDP connect sends nothing, it only asks the kernel which source address a destination would get.
const PROBE_PORT = 9;
const DOTTED_QUAD = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export interface HostsEntry {
  address: string;
  family: 4 | 6;
  /** the canonical name and its aliases, lower-cased */
  names: string[];
}

export interface ResolvConf {
  /** search domains, in order (`search`, or `domain`, the last one given wins; else the host name's domain) */
  search: string[];
  ndots: number;
  /** per query, like glibc's `options timeout:N` (seconds there) */
  timeoutMs: number;
  attempts: number;
  noTldQuery: boolean;
}

/** What DNS said about one name, A and AAAA together. */
export type Verdict =
  | { kind: 'found'; addresses: LookupAddress[] }
  | { kind: 'nxdomain' | 'nodata' | 'servfail' | 'refused' | 'timeout' | 'unreachable' | 'failed'; code?: string };

type Failure = Exclude<Verdict, { kind: 'found' }>;

interface Tried {
  name: string;
  failure: Failure;
}

export type SearchResult = { addresses: LookupAddress[] } | { failure: Failure; failedName: string; tried: Array<{ name: string; kind: Failure['kind'] }> };

export interface SystemResolverConfig {
  hostsPath?: string;
  /** where search, ndots, timeout and attempts are read; c-ares reads its nameservers from /etc/resolv.conf itself */
  resolvConfPath?: string;
  /** nameservers ("127.0.0.1:5353") instead of the ones c-ares reads from /etc/resolv.conf (tests) */
  servers?: string[];
  env?: Record<string, string | undefined>;
  hostname?: () => string;
}

/** /etc/hosts as glibc's files module reads it: "ADDRESS NAME [ALIAS...]", `#` to the end of a line a comment. */
export function parseHosts(text: string): HostsEntry[] {
  const entries: HostsEntry[] = [];
  for (const raw of text.split('\n')) {
    const [address, ...names] = raw.replace(/#.*/, '').trim().split(/\s+/);
    if (!address || names.length === 0) continue;
    // inet_pton: strict dotted quads, no zone index ("127.1" and "fe80::1%eth0" lines are skipped, as glibc does)
    const v6 = address.includes(':') && !address.includes('%') ? parseIPv6(address) : null;
    if (v6) entries.push({ address: v6, family: 6, names: names.map((n) => n.toLowerCase()) });
    else if (DOTTED_QUAD.test(address)) entries.push({ address, family: 4, names: names.map((n) => n.toLowerCase()) });
  }
  return entries;
}

/** Every entry naming `name` (case-insensitive, exact: "db." is not "db"), in file order, both families. */
export function findInHosts(entries: HostsEntry[], name: string): LookupAddress[] {
  const wanted = name.toLowerCase();
  return entries.filter((e) => e.names.includes(wanted)).map((e) => ({ address: e.address, family: e.family }));
}

/** resolv.conf as glibc's res_init reads it, LOCALDOMAIN and RES_OPTIONS from the environment included. */
export function parseResolvConf(text: string, opts: { env?: Record<string, string | undefined>; hostname?: string } = {}): ResolvConf {
  const conf: ResolvConf = { search: [], ndots: 1, timeoutMs: DEFAULT_TIMEOUT_S * 1000, attempts: DEFAULT_ATTEMPTS, noTldQuery: false };
  let search: string[] | null = null;
  for (const line of text.split('\n')) {
    const match = /^(domain|search|options)[ \t]+(.*)$/.exec(line.trimEnd());
    if (!match) continue;
    const words = (match[2] ?? '').split(/[ \t]+/).filter(Boolean);
    if (match[1] === 'domain') search = words.slice(0, 1);
    else if (match[1] === 'search') search = words;
    else applyOptions(conf, words);
  }
  const localDomain = opts.env?.LOCALDOMAIN;
  if (localDomain !== undefined) search = localDomain.split(/[ \t]+/).filter(Boolean);
  if (search === null) {
    // no search or domain line: the domain of the host's own name, as glibc does
    const host = opts.hostname ?? '';
    const dot = host.indexOf('.');
    search = dot > 0 && dot < host.length - 1 ? [host.slice(dot + 1)] : [];
  }
  conf.search = search;
  if (opts.env?.RES_OPTIONS) applyOptions(conf, opts.env.RES_OPTIONS.split(/[ \t]+/).filter(Boolean));
  return conf;
}

function applyOptions(conf: ResolvConf, words: string[]): void {
  for (const word of words) {
    const [key, value] = word.split(':');
    const n = value === undefined ? Number.NaN : Number.parseInt(value, 10);
    if (key === 'ndots' && n >= 0) conf.ndots = Math.min(n, MAX_NDOTS);
    // glibc treats timeout:0 as 1 s and would not ask at all with attempts:0; both are taken as 1 here
    else if (key === 'timeout' && n >= 0) conf.timeoutMs = Math.max(1, Math.min(n, MAX_TIMEOUT_S)) * 1000;
    else if (key === 'attempts' && n >= 0) conf.attempts = Math.max(1, Math.min(n, MAX_ATTEMPTS));
    else if (key === 'no-tld-query') conf.noTldQuery = true;
  }
}

/**
 * glibc's res_nsearch: a name with at least ndots dots (or ending in '.') is asked as it is first; then, unless it
 * ends in '.', with each search domain; then as it is, if not yet asked. "No such name" and "no address" move on,
 * as does SERVFAIL; any other failure (no answer, refused) ends the search domains. The failure reported is the
 * first one of the name as it is when that was asked first, else "no address" if a name had one, else SERVFAIL,
 * else the last.
 */
export async function searchName(name: string, conf: ResolvConf, ask: (fqdn: string) => Promise<Verdict>): Promise<SearchResult> {
  const absolute = name.endsWith('.');
  const bare = absolute ? name.slice(0, -1) : name;
  const dots = name.split('.').length - 1;
  const tried: Tried[] = [];
  const query = async (fqdn: string): Promise<LookupAddress[] | Tried> => {
    const verdict = await ask(fqdn);
    if (verdict.kind === 'found') return verdict.addresses;
    const failed = { name: fqdn, failure: verdict };
    tried.push(failed);
    return failed;
  };
  const failedWith = (t: Tried): SearchResult => ({ failure: t.failure, failedName: t.name, tried: tried.map((x) => ({ name: x.name, kind: x.failure.kind })) });
  let asIs: Tried | undefined;
  if (dots >= conf.ndots || absolute) {
    const r = await query(bare);
    if (Array.isArray(r)) return { addresses: r };
    if (absolute) return failedWith(r);
    asIs = r;
  }
  let nodata: Tried | undefined;
  let servfail: Tried | undefined;
  let rootOnList = false;
  for (const domain of conf.search) {
    const root = domain === '' || domain === '.';
    rootOnList ||= root;
    const r = await query(root ? bare : `${bare}.${domain.replace(/\.$/, '')}`);
    if (Array.isArray(r)) return { addresses: r };
    if (r.failure.kind === 'nodata') nodata ??= r;
    else if (r.failure.kind === 'servfail') servfail ??= r;
    else if (r.failure.kind !== 'nxdomain') break;
  }
  if ((dots > 0 || conf.search.length === 0 || !conf.noTldQuery) && !asIs && !rootOnList) {
    const r = await query(bare);
    if (Array.isArray(r)) return { addresses: r };
  }
  const final = asIs ?? nodata ?? servfail ?? tried.at(-1);
  return final ? failedWith(final) : { failure: { kind: 'nxdomain' }, failedName: bare, tried: [] };
}

/** The names searchName asks, in order, when each one is "no such name". */
export async function searchCandidates(name: string, conf: ResolvConf): Promise<string[]> {
  const names: string[] = [];
  await searchName(name, conf, async (fqdn) => {
    names.push(fqdn);
    return { kind: 'nxdomain' };
  });
  return names;
}

/** A and AAAA answers of one name combined, as getaddrinfo combines them: any address is an answer. */
export function combineVerdicts(a: LookupAddress[] | { code?: string }, aaaa: LookupAddress[] | { code?: string }): Verdict {
  const addresses = [...(Array.isArray(a) ? a : []), ...(Array.isArray(aaaa) ? aaaa : [])];
  if (addresses.length > 0) return { kind: 'found', addresses };
  const failures = [a, aaaa].map((r): Failure => (Array.isArray(r) ? { kind: 'nodata' } : { kind: failureKind(r.code), ...(r.code ? { code: r.code } : {}) }));
  // the family that did not get an answer decides: a name is missing only when both say so
  for (const kind of FAILURE_PRIORITY) {
    const found = failures.find((f) => f.kind === kind);
    if (found) return found;
  }
  return { kind: 'nodata' };
}

const FAILURE_PRIORITY: ReadonlyArray<Failure['kind']> = ['timeout', 'unreachable', 'refused', 'failed', 'servfail', 'nxdomain', 'nodata'];

/** c-ares error codes (node:dns) to what they mean for a search. */
export function failureKind(code: string | undefined): Failure['kind'] {
  switch (code) {
    case 'ENOTFOUND':
    case 'EBADNAME':
      return 'nxdomain';
    case 'ENODATA':
      return 'nodata';
    case 'ESERVFAIL':
      return 'servfail';
    case 'EREFUSED':
      return 'refused';
    case 'ETIMEOUT':
      return 'timeout';
    case 'ECONNREFUSED':
      return 'unreachable';
    default:
      return 'failed';
  }
}

const KIND_WORDS: Record<Failure['kind'], string> = {
  nxdomain: 'no such name',
  nodata: 'no A or AAAA record',
  servfail: 'server failure (SERVFAIL)',
  refused: 'query refused (REFUSED)',
  timeout: 'no answer',
  unreachable: 'connection refused',
  failed: 'query failed',
};

/**
 * The error a failed search rejects with, in the codes getaddrinfo gives through dns.lookup: the name does not
 * exist or has no address → ENOTFOUND; the resolver did not answer, refused or failed → EAI_AGAIN.
 */
export function lookupError(host: string, result: Exclude<SearchResult, { addresses: LookupAddress[] }>, where: { servers: string[]; elapsedMs: number; hostsPath?: string }): NodeJS.ErrnoException {
  const { failure, failedName } = result;
  const servers = where.servers.length > 0 ? where.servers.join(', ') : 'no nameserver';
  if (failure.kind === 'nxdomain' || failure.kind === 'nodata') {
    const tried = result.tried.map((t) => `${t.name}: ${KIND_WORDS[t.kind]}`).join('; ');
    return resolveError('ENOTFOUND', host, `no address for "${host}" in ${where.hostsPath ?? HOSTS_PATH} or DNS (${tried || 'not a name DNS can ask about'})`);
  }
  if (failure.kind === 'timeout') return resolveError('EAI_AGAIN', host, silenceMessage(failedName, servers, where.elapsedMs));
  if (failure.kind === 'unreachable') return resolveError('EAI_AGAIN', host, `the resolver (${servers}) refused the connection when asked about "${failedName}"`);
  if (failure.kind === 'refused') return resolveError('EAI_AGAIN', host, `the resolver (${servers}) refused to answer about "${failedName}" (REFUSED)`);
  if (failure.kind === 'servfail') return resolveError('EAI_AGAIN', host, `the resolver (${servers}) failed to answer about "${failedName}" (SERVFAIL)`);
  return resolveError('EAI_AGAIN', host, `asking the resolver (${servers}) about "${failedName}" failed (${failure.code ?? 'unknown error'})`);
}

function silenceMessage(name: string, servers: string, ms: number): string {
  return `the resolver (${servers}) did not answer within ${Math.round(ms)}ms when asked about "${name}"`;
}

function resolveError(code: 'ENOTFOUND' | 'EAI_AGAIN', host: string, message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(message), { code, hostname: host });
}

/** An IP literal's address ("10.0.0.1", "::1", "[::1]", and inet_aton's "127.1" or "0x7f000001"), else null. */
export function parseLiteral(host: string): LookupAddress | null {
  const text = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  // as written, as dns.lookup returns a literal (it never asks getaddrinfo about one)
  if (text.includes(':')) return parseIPv6(text) ? { address: text, family: 6 } : null;
  const v4 = inetAton(text);
  return v4 === null ? null : { address: v4, family: 4 };
}

/** inet_aton's forms: a, a.b, a.b.c, a.b.c.d, each part decimal, octal (0...) or hex (0x...); the last fills the rest. */
function inetAton(text: string): string | null {
  const parts = text.split('.');
  if (parts.length > 4) return null;
  const values: number[] = [];
  for (const part of parts) {
    if (!/^(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.test(part)) return null;
    values.push(/^0[xX]/.test(part) ? Number.parseInt(part.slice(2), 16) : part.startsWith('0') ? Number.parseInt(part, 8) : Number.parseInt(part, 10));
  }
  const lastValue = values.pop() ?? 0;
  if (values.some((v) => v > 255) || lastValue >= 2 ** (8 * (4 - values.length))) return null;
  const bytes = [...values];
  for (let i = 4 - values.length - 1; i >= 0; i--) bytes.push(Math.floor(lastValue / 2 ** (8 * i)) % 256);
  return bytes.join('.');
}

/** inet_pton(AF_INET6) in node's C++, normalised ("FD00:0::5" → "fd00::5"); net.isIPv6 would compile a large regex (~4 ms of a cold start). */
function parseIPv6(text: string): string | null {
  try {
    return new net.SocketAddress({ address: text, family: 'ipv6' }).address;
  } catch {
    return null;
  }
}

/**
 * glibc's RFC 3484 ordering with its default tables (no /etc/gai.conf): usable destinations first (rule 1), then
 * matching scope (2), matching label (5), higher precedence (6), smaller scope (8), else as given (10).
 * `sources[i]` is the source address the kernel would use for `list[i]`, null when it has no route there.
 */
export function sortAddresses(list: LookupAddress[], sources: Array<string | null>): LookupAddress[] {
  const rows = list.map((dest, index) => {
    const d = addressBytes(dest.address);
    const s = sources[index] ? addressBytes(sources[index] as string) : null;
    return { dest, index, dScope: scopeOf(d), dLabel: matchPrefix(d, LABELS), prec: matchPrefix(d, PRECEDENCE), sScope: s ? scopeOf(s) : -1, sLabel: s ? matchPrefix(s, LABELS) : -1, usable: s !== null };
  });
  rows.sort((a, b) => {
    if (a.usable !== b.usable) return a.usable ? -1 : 1;
    if (a.usable) {
      const aScope = a.dScope === a.sScope;
      const bScope = b.dScope === b.sScope;
      if (aScope !== bScope) return aScope ? -1 : 1;
      const aLabel = a.dLabel === a.sLabel;
      const bLabel = b.dLabel === b.sLabel;
      if (aLabel !== bLabel) return aLabel ? -1 : 1;
    }
    if (a.prec !== b.prec) return b.prec - a.prec;
    if (a.dScope !== b.dScope) return a.dScope - b.dScope;
    return a.index - b.index;
  });
  return rows.map((r) => r.dest);
}

type PrefixTable = Array<{ prefix: Uint8Array; bits: number; value: number }>;

function table(rows: Array<[string, number, number]>): PrefixTable {
  // longest prefix first, so the first match is the best
  return rows.map(([prefix, bits, value]) => ({ prefix: addressBytes(prefix), bits, value })).sort((a, b) => b.bits - a.bits);
}

const PRECEDENCE = table([
  ['::1', 128, 50],
  ['::', 0, 40],
  ['2002::', 16, 30],
  ['::', 96, 20],
  ['::ffff:0:0', 96, 10],
]);
const LABELS = table([
  ['::1', 128, 0],
  ['::', 0, 1],
  ['2002::', 16, 2],
  ['::', 96, 3],
  ['::ffff:0:0', 96, 4],
  ['fec0::', 10, 5],
  ['fc00::', 7, 6],
  ['2001::', 32, 7],
]);

function matchPrefix(address: Uint8Array, rows: PrefixTable): number {
  for (const row of rows) {
    let ok = true;
    for (let bit = 0; bit < row.bits && ok; bit += 8) {
      const take = Math.min(8, row.bits - bit);
      const mask = (0xff << (8 - take)) & 0xff;
      ok = ((address[bit / 8] ?? 0) & mask) === ((row.prefix[bit / 8] ?? 0) & mask);
    }
    if (ok) return row.value;
  }
  return 0;
}

function scopeOf(a: Uint8Array): number {
  const mapped = a.subarray(0, 12).every((b, i) => b === (i < 10 ? 0 : 0xff));
  if (mapped) return a[12] === 127 || (a[12] === 169 && a[13] === 254) ? 2 : 14;
  if (a[0] === 0xff) return (a[1] ?? 0) & 0xf;
  const loopback = a.subarray(0, 15).every((b) => b === 0) && a[15] === 1;
  if (loopback || (a[0] === 0xfe && ((a[1] ?? 0) & 0xc0) === 0x80)) return 2;
  if (a[0] === 0xfe && ((a[1] ?? 0) & 0xc0) === 0xc0) return 5;
  return 14;
}

/** 16 bytes; an IPv4 address as ::ffff:a.b.c.d. */
function addressBytes(address: string): Uint8Array {
  const out = new Uint8Array(16);
  const text = address.replace(/%.*$/, '');
  const v4Words = (quad: string): number[] => {
    const [a = 0, b = 0, c = 0, d = 0] = quad.split('.').map(Number);
    return [(a << 8) | b, (c << 8) | d];
  };
  const words = (part: string): number[] => (part === '' ? [] : part.split(':').flatMap((g) => (g.includes('.') ? v4Words(g) : [Number.parseInt(g, 16)])));
  const [headText = '', tailText] = text.includes(':') ? text.split('::') : ['', `ffff:${text}`];
  const head = words(headText);
  const tail = tailText === undefined ? [] : words(tailText);
  [...head, ...Array<number>(Math.max(0, 8 - head.length - tail.length)).fill(0), ...tail].forEach((w, i) => {
    out[i * 2] = (w >> 8) & 0xff;
    out[i * 2 + 1] = w & 0xff;
  });
  return out;
}

/** The source address the kernel would pick for each destination (a UDP connect sends nothing), null if none. */
async function probeSources(list: LookupAddress[]): Promise<Array<string | null>> {
  // loaded here: most names have one address, and a cold start should not pay for dgram
  const { default: dgram } = await import('node:dgram');
  return Promise.all(
    list.map(
      (dest) =>
        new Promise<string | null>((resolve) => {
          const socket = dgram.createSocket(dest.family === 6 ? 'udp6' : 'udp4');
          let done = false;
          const finish = (source: string | null): void => {
            if (done) return;
            done = true;
            socket.close();
            resolve(source);
          };
          socket.once('error', () => finish(null));
          // no route (ENETUNREACH) comes to the callback
          socket.connect(PROBE_PORT, dest.address, (error?: Error) => finish(error ? null : socket.address().address));
        }),
    ),
  );
}

async function ordered(list: LookupAddress[]): Promise<LookupAddress[]> {
  return list.length > 1 ? sortAddresses(list, await probeSources(list)) : list;
}

/** A parsed file, read again when its mtime, size or inode changes; a missing file reads as empty. */
function watchedFile<T>(path: string, parse: (text: string) => T): () => Promise<T> {
  let cached: { key: string; value: T } | null = null;
  return async () => {
    const s = await stat(path).catch(() => null);
    const key = s ? `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}` : 'missing';
    if (cached?.key === key) return cached.value;
    const text = await readFile(path, 'utf8').catch(() => '');
    cached = { key, value: parse(text) };
    return cached.value;
  };
}

function abortError(host: string, reason: unknown): Error {
  return Object.assign(new Error(`lookup of "${host}" cancelled`), { name: 'AbortError', code: 'ABORT_ERR', cause: reason });
}

/** A resolver reading the given files (tests point it at their own); `systemResolver` reads the system's. */
export function createSystemResolver(config: SystemResolverConfig = {}): Resolver {
  const hostsPath = config.hostsPath ?? HOSTS_PATH;
  const hosts = watchedFile(hostsPath, parseHosts);
  const env = config.env ?? process.env;
  const resolvConf = watchedFile(config.resolvConfPath ?? RESOLV_CONF_PATH, (text) => parseResolvConf(text, { env, hostname: (config.hostname ?? systemHostname)() }));
  return async (host: string, options: LookupOptions = {}): Promise<LookupAddress[]> => {
    const { signal } = options;
    if (signal?.aborted) throw abortError(host, signal.reason);
    const literal = parseLiteral(host);
    if (literal) return [literal];
    if (host === '' || host === '.') throw resolveError('ENOTFOUND', host, `"${host}" is not a host name`);
    const fromFile = findInHosts(await hosts(), host);
    if (fromFile.length > 0) return ordered(fromFile);
    const conf = await resolvConf();
    if (signal?.aborted) throw abortError(host, signal.reason);
    return ordered(await askDns(host, conf, { ...options, hostsPath, ...(config.servers ? { servers: config.servers } : {}) }));
  };
}

/**
 * The DNS part of one lookup, on a channel of its own so that cancelling it touches no other lookup. It ends by
 * an answer, by the budget (timeoutMs, else resolv.conf's timeout × attempts × nameservers), or by the signal;
 * either way resolver.cancel() leaves no query pending, so nothing holds the process.
 */
function askDns(host: string, conf: ResolvConf, opts: LookupOptions & { hostsPath: string; servers?: string[] }): Promise<LookupAddress[]> {
  const channel = new DnsResolver({ timeout: conf.timeoutMs, tries: conf.attempts });
  if (opts.servers) channel.setServers(opts.servers);
  const servers = channel.getServers();
  const budgetMs = opts.timeoutMs ?? conf.timeoutMs * conf.attempts * Math.max(1, servers.length);
  const startedAt = performance.now();
  const { signal } = opts;
  return new Promise<LookupAddress[]>((resolve, reject) => {
    let finished = false;
    // the name being asked, and what one family already answered while the other is still out
    let current = host;
    let partial: LookupAddress[] = [];
    const finish = (settle: () => void): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      channel.cancel();
      settle();
    };
    const onAbort = (): void => finish(() => reject(abortError(host, signal?.reason)));
    // getaddrinfo returns one family's answer when the other never comes; so does the budget
    const timer = setTimeout(
      () => finish(() => (partial.length > 0 ? resolve(partial) : reject(resolveError('EAI_AGAIN', host, silenceMessage(current, servers.join(', ') || 'no nameserver', budgetMs))))),
      budgetMs,
    );
    signal?.addEventListener('abort', onAbort, { once: true });
    const stopped = new Error('lookup finished');
    const ask = async (fqdn: string): Promise<Verdict> => {
      if (finished) throw stopped;
      current = fqdn;
      partial = [];
      const family = (f: 4 | 6) => (list: string[]): LookupAddress[] => {
        const found = list.map((address) => ({ address, family: f }));
        if (current === fqdn) partial.push(...found);
        return found;
      };
      const fail = (error: NodeJS.ErrnoException): { code?: string } => ({ ...(error.code ? { code: error.code } : {}) });
      const [a, aaaa] = await Promise.all([channel.resolve4(fqdn).then(family(4), fail), channel.resolve6(fqdn).then(family(6), fail)]);
      if (finished) throw stopped;
      return combineVerdicts(a, aaaa);
    };
    searchName(host, conf, ask).then(
      (result) => finish(() => ('addresses' in result ? resolve(result.addresses) : reject(lookupError(host, result, { servers, elapsedMs: performance.now() - startedAt, hostsPath: opts.hostsPath })))),
      (error: unknown) => finish(() => reject(error)),
    );
  });
}

/** The system's resolver: /etc/hosts, then DNS as /etc/resolv.conf says; cancellable through options.signal. */
export const systemResolver: Resolver = createSystemResolver();
