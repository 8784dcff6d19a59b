// The system resolver's pieces: hosts-file and resolv.conf parsing, the search list, the error mapping and the
// address order as pure functions; then the resolver itself against a DNS server of the test's own on a random
// port (never the machine's resolver: it stops answering after a burst), and a lookup that is aborted.
// How it compares with glibc itself is test/checks/resolve-glibc.test.ts.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  combineVerdicts,
  createSystemResolver,
  failureKind,
  findInHosts,
  lookupError,
  parseHosts,
  parseLiteral,
  parseResolvConf,
  searchCandidates,
  searchName,
  sortAddresses,
  systemResolver,
  type ResolvConf,
  type Verdict,
} from '../../src/checks/resolve.js';
import { startDnsServer } from '../fixtures/dns/server.mjs';

type DnsServer = Awaited<ReturnType<typeof startDnsServer>>;

const ROOT = resolve(import.meta.dirname, '..', '..');
const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sr-resolve-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const conf = (more: Partial<ResolvConf> = {}): ResolvConf => ({ search: [], ndots: 1, timeoutMs: 5_000, attempts: 2, noTldQuery: false, ...more });

describe('parseHosts / findInHosts', () => {
  const hosts = parseHosts(
    [
      '# comment line',
      '127.0.0.1\tlocalhost',
      '127.0.0.2  Web.Example  web alias # trailing comment',
      '::1 localhost ip6-localhost',
      'FD00:0:0::5 multi',
      '10.0.0.5 multi',
      '127.1 short-form',
      'fe80::1%eth0 scoped',
      'not-an-address broken',
      '10.0.0.9',
      '10.0.0.8 dotted.',
      '',
    ].join('\n'),
  );

  it('reads address, canonical name and aliases, both families; skips what inet_pton rejects', () => {
    expect(hosts).toEqual([
      { address: '127.0.0.1', family: 4, names: ['localhost'] },
      { address: '127.0.0.2', family: 4, names: ['web.example', 'web', 'alias'] },
      { address: '::1', family: 6, names: ['localhost', 'ip6-localhost'] },
      { address: 'fd00::5', family: 6, names: ['multi'] },
      { address: '10.0.0.5', family: 4, names: ['multi'] },
      { address: '10.0.0.8', family: 4, names: ['dotted.'] },
    ]);
  });

  it('finds every line naming the host, case-insensitively, in file order; a trailing dot must match exactly', () => {
    expect(findInHosts(hosts, 'LocalHost')).toEqual([
      { address: '127.0.0.1', family: 4 },
      { address: '::1', family: 6 },
    ]);
    expect(findInHosts(hosts, 'ALIAS')).toEqual([{ address: '127.0.0.2', family: 4 }]);
    expect(findInHosts(hosts, 'multi').map((a) => a.address)).toEqual(['fd00::5', '10.0.0.5']);
    expect(findInHosts(hosts, 'localhost.')).toEqual([]);
    expect(findInHosts(hosts, 'dotted')).toEqual([]);
    expect(findInHosts(hosts, 'short-form')).toEqual([]);
  });
});

describe('parseResolvConf', () => {
  it('has glibc\'s defaults', () => {
    expect(parseResolvConf('nameserver 10.0.0.1\n')).toEqual(conf());
  });

  it('takes the last of search and domain, ndots/timeout/attempts within glibc\'s ceilings, no-tld-query', () => {
    const text = ['search a.test b.test', 'domain only.test', '# search ignored.test', 'options ndots:3 timeout:2', 'options attempts:9 no-tld-query rotate'].join('\n');
    expect(parseResolvConf(text)).toEqual({ search: ['only.test'], ndots: 3, timeoutMs: 2_000, attempts: 5, noTldQuery: true });
    expect(parseResolvConf('domain x.test\nsearch a.test  b.test\t c.test\noptions ndots:99 timeout:99\n')).toMatchObject({ search: ['a.test', 'b.test', 'c.test'], ndots: 15, timeoutMs: 30_000 });
  });

  it('without search or domain, searches the host name\'s domain', () => {
    expect(parseResolvConf('', { hostname: 'box.corp.example' }).search).toEqual(['corp.example']);
    expect(parseResolvConf('', { hostname: 'box' }).search).toEqual([]);
    expect(parseResolvConf('search a.test\n', { hostname: 'box.corp.example' }).search).toEqual(['a.test']);
  });

  it('LOCALDOMAIN replaces the search list and RES_OPTIONS adds options, as in glibc', () => {
    const env = { LOCALDOMAIN: 'env1.test env2.test', RES_OPTIONS: 'ndots:2 attempts:1' };
    expect(parseResolvConf('search file.test\noptions ndots:4 timeout:3\n', { env })).toEqual({ ...conf(), search: ['env1.test', 'env2.test'], ndots: 2, timeoutMs: 3_000, attempts: 1 });
  });
});

describe('search list (glibc res_nsearch)', () => {
  const search = ['a.test', 'b.test'];

  it.each([
    ['web', conf({ search }), ['web.a.test', 'web.b.test', 'web']],
    ['web.x', conf({ search }), ['web.x', 'web.x.a.test', 'web.x.b.test']],
    ['web.x', conf({ search, ndots: 2 }), ['web.x.a.test', 'web.x.b.test', 'web.x']],
    ['web.x.y', conf({ search, ndots: 2 }), ['web.x.y', 'web.x.y.a.test', 'web.x.y.b.test']],
    ['web.', conf({ search }), ['web']],
    ['web.x.', conf({ search, ndots: 5 }), ['web.x']],
    ['web', conf({ search, noTldQuery: true }), ['web.a.test', 'web.b.test']],
    ['web.x', conf({ search, noTldQuery: true, ndots: 2 }), ['web.x.a.test', 'web.x.b.test', 'web.x']],
    ['web', conf({ search: ['a.test.', '.', 'b.test'] }), ['web.a.test', 'web', 'web.b.test']],
    ['web', conf(), ['web']],
  ])('%s with %j asks %j', async (name, c, expected) => {
    expect(await searchCandidates(name, c)).toEqual(expected);
  });

  const found: Verdict = { kind: 'found', addresses: [{ address: '10.0.0.1', family: 4 }] };
  function scripted(verdicts: Record<string, Verdict>): { ask: (fqdn: string) => Promise<Verdict>; asked: string[] } {
    const asked: string[] = [];
    return { asked, ask: async (fqdn) => (asked.push(fqdn), verdicts[fqdn] ?? { kind: 'nxdomain' }) };
  }

  it('moves on after SERVFAIL and "no address"; a timeout or a refusal ends the search domains, the bare name is still asked', async () => {
    const servfail = scripted({ 'web.a.test': { kind: 'servfail' }, 'web.b.test': found });
    expect(await searchName('web', conf({ search }), servfail.ask)).toEqual({ addresses: found.addresses });
    expect(servfail.asked).toEqual(['web.a.test', 'web.b.test']);
    const refused = scripted({ 'web.a.test': { kind: 'refused' }, 'web.b.test': found });
    expect(await searchName('web', conf({ search }), refused.ask)).toMatchObject({ failure: { kind: 'nxdomain' }, failedName: 'web' });
    expect(refused.asked).toEqual(['web.a.test', 'web']);
    const silent = scripted({ 'web.a.test': { kind: 'timeout' }, web: found });
    expect(await searchName('web', conf({ search }), silent.ask)).toEqual({ addresses: found.addresses });
    expect(silent.asked).toEqual(['web.a.test', 'web']);
  });

  it('reports the first answer for the name as it is, else "no address", else SERVFAIL, else the last', async () => {
    const asIsFirst = scripted({ 'web.x': { kind: 'timeout' } });
    expect(await searchName('web.x', conf({ search }), asIsFirst.ask)).toMatchObject({ failure: { kind: 'timeout' }, failedName: 'web.x' });
    const nodata = scripted({ 'web.a.test': { kind: 'servfail' }, 'web.b.test': { kind: 'nodata' } });
    expect(await searchName('web', conf({ search }), nodata.ask)).toMatchObject({ failure: { kind: 'nodata' }, failedName: 'web.b.test' });
    const servfail = scripted({ 'web.b.test': { kind: 'servfail' } });
    expect(await searchName('web', conf({ search }), servfail.ask)).toMatchObject({ failure: { kind: 'servfail' }, failedName: 'web.b.test' });
    const last = scripted({ web: { kind: 'timeout' } });
    const r = await searchName('web', conf({ search }), last.ask);
    expect(r).toEqual({
      failure: { kind: 'timeout' },
      failedName: 'web',
      tried: [
        { name: 'web.a.test', kind: 'nxdomain' },
        { name: 'web.b.test', kind: 'nxdomain' },
        { name: 'web', kind: 'timeout' },
      ],
    });
  });
});

describe('A and AAAA together, and the error a lookup rejects with', () => {
  const v4 = [{ address: '10.0.0.1', family: 4 }];
  const v6 = [{ address: 'fd00::1', family: 6 }];

  it('any address is an answer; a name is missing only when both families say so', () => {
    expect(combineVerdicts(v4, v6)).toEqual({ kind: 'found', addresses: [...v4, ...v6] });
    expect(combineVerdicts(v4, { code: 'ETIMEOUT' })).toEqual({ kind: 'found', addresses: v4 });
    expect(combineVerdicts({ code: 'ENOTFOUND' }, { code: 'ENOTFOUND' })).toEqual({ kind: 'nxdomain', code: 'ENOTFOUND' });
    expect(combineVerdicts([], { code: 'ENODATA' })).toMatchObject({ kind: 'nodata' });
    expect(combineVerdicts({ code: 'ENODATA' }, { code: 'ETIMEOUT' })).toEqual({ kind: 'timeout', code: 'ETIMEOUT' });
    expect(combineVerdicts({ code: 'ESERVFAIL' }, { code: 'ENOTFOUND' })).toEqual({ kind: 'servfail', code: 'ESERVFAIL' });
  });

  it.each([
    ['ENOTFOUND', 'nxdomain'],
    ['EBADNAME', 'nxdomain'],
    ['ENODATA', 'nodata'],
    ['ESERVFAIL', 'servfail'],
    ['EREFUSED', 'refused'],
    ['ETIMEOUT', 'timeout'],
    ['ECONNREFUSED', 'unreachable'],
    ['EFORMERR', 'failed'],
  ])('c-ares %s is %s', (code, kind) => {
    expect(failureKind(code)).toBe(kind);
  });

  const where = { servers: ['127.0.0.1'], elapsedMs: 1_234.4 };
  const tried = [
    { name: 'db.corp.test', kind: 'nodata' as const },
    { name: 'db', kind: 'nxdomain' as const },
  ];

  it('no such name, or no address in either family: ENOTFOUND, naming every name asked', () => {
    const e = lookupError('db', { failure: { kind: 'nodata' }, failedName: 'db.corp.test', tried }, where);
    expect(e.code).toBe('ENOTFOUND');
    expect(e.message).toBe('no address for "db" in /etc/hosts or DNS (db.corp.test: no A or AAAA record; db: no such name)');
    expect(lookupError('db', { failure: { kind: 'nxdomain' }, failedName: 'db', tried }, where).code).toBe('ENOTFOUND');
  });

  it('no answer, refused, SERVFAIL, or any other failure: EAI_AGAIN, saying what the resolver did', () => {
    const failure = (kind: Exclude<Verdict, { kind: 'found' }>['kind'], code?: string) => lookupError('db', { failure: { kind, ...(code ? { code } : {}) }, failedName: 'db.corp.test', tried }, where);
    expect(failure('timeout')).toMatchObject({ code: 'EAI_AGAIN', message: 'the resolver (127.0.0.1) did not answer within 1234ms when asked about "db.corp.test"' });
    expect(failure('refused')).toMatchObject({ code: 'EAI_AGAIN', message: expect.stringContaining('refused to answer about "db.corp.test" (REFUSED)') });
    expect(failure('unreachable')).toMatchObject({ code: 'EAI_AGAIN', message: expect.stringContaining('refused the connection') });
    expect(failure('servfail')).toMatchObject({ code: 'EAI_AGAIN', message: expect.stringContaining('(SERVFAIL)') });
    expect(failure('failed', 'EFORMERR')).toMatchObject({ code: 'EAI_AGAIN', message: expect.stringContaining('failed (EFORMERR)') });
  });
});

describe('IP literals and address order', () => {
  it.each([
    ['10.1.2.3', '10.1.2.3', 4],
    ['::1', '::1', 6],
    ['[::1]', '::1', 6],
    ['FD00::1', 'FD00::1', 6],
    ['fe80::1%lo', 'fe80::1%lo', 6],
    ['127.1', '127.0.0.1', 4],
    ['2130706433', '127.0.0.1', 4],
    ['0x7f.1', '127.0.0.1', 4],
    ['010.1', '8.0.0.1', 4],
  ])('%s is the literal %s', (text, address, family) => {
    expect(parseLiteral(text)).toEqual({ address, family });
  });

  it.each(['localhost', '1.2.3.256', '08.1.1.1', '1.2.3.4.5', 'fe80::zz', '[db]', ''])('%s is not a literal', (text) => {
    expect(parseLiteral(text)).toBeNull();
  });

  const a = (address: string) => ({ address, family: address.includes(':') ? 6 : 4 });

  it('puts reachable destinations first, then glibc\'s precedence (::1, IPv6, IPv4), else keeps the order', () => {
    expect(sortAddresses([a('127.0.0.1'), a('::1')], ['127.0.0.1', '::1'])).toEqual([a('::1'), a('127.0.0.1')]);
    expect(sortAddresses([a('fd00::5'), a('10.0.0.5')], [null, '10.0.0.1'])).toEqual([a('10.0.0.5'), a('fd00::5')]);
    expect(sortAddresses([a('10.0.0.5'), a('10.0.0.6'), a('fd00::5')], [null, null, null])).toEqual([a('fd00::5'), a('10.0.0.5'), a('10.0.0.6')]);
    expect(sortAddresses([a('10.0.0.5'), a('2001:db8::1')], ['10.0.0.1', '2001:db8::2'])).toEqual([a('2001:db8::1'), a('10.0.0.5')]);
    // matching label (5): from a ULA source (fd00::/8, label 6) a global destination (label 1) loses to IPv4
    expect(sortAddresses([a('2001:db8::1'), a('10.0.0.5')], ['fd00::2', '10.0.0.1'])).toEqual([a('10.0.0.5'), a('2001:db8::1')]);
    // matching scope before precedence: a link-local source for a global destination loses to IPv4
    expect(sortAddresses([a('2001:db8::1'), a('10.0.0.5')], ['fe80::2', '10.0.0.1'])).toEqual([a('10.0.0.5'), a('2001:db8::1')]);
    expect(sortAddresses([a('10.0.0.7'), a('10.0.0.7')], [null, null])).toEqual([a('10.0.0.7'), a('10.0.0.7')]);
  });
});

describe('systemResolver', () => {
  async function ownDns(names: NonNullable<Parameters<typeof startDnsServer>[0]>['names'], resolvConf = 'options timeout:1 attempts:1\n'): Promise<{ server: DnsServer; dir: string; resolver: ReturnType<typeof createSystemResolver> }> {
    const server = await startDnsServer({ names });
    cleanups.push(() => server.close());
    const dir = tempDir();
    writeFileSync(join(dir, 'hosts'), '127.0.0.1 localhost\n10.9.9.9 pinned.test\n');
    writeFileSync(join(dir, 'resolv.conf'), resolvConf);
    const resolver = createSystemResolver({ hostsPath: join(dir, 'hosts'), resolvConfPath: join(dir, 'resolv.conf'), servers: [`127.0.0.1:${server.port}`], env: {}, hostname: () => 'box' });
    return { server, dir, resolver };
  }

  it('keeps localhost working: /etc/hosts maps it to 127.0.0.1, no DNS asked', async () => {
    expect(await systemResolver('localhost')).toEqual([{ address: '127.0.0.1', family: 4 }]);
    expect(await systemResolver('127.0.0.1')).toEqual([{ address: '127.0.0.1', family: 4 }]);
  });

  it('answers from the hosts file before DNS, and reads it again when it changes', async () => {
    const { server, dir, resolver } = await ownDns({ 'pinned.test': { a: ['10.0.0.1'] } });
    expect(await resolver('PINNED.test')).toEqual([{ address: '10.9.9.9', family: 4 }]);
    writeFileSync(join(dir, 'hosts'), '127.0.0.1 localhost\n10.8.8.8 pinned.test\n');
    // same size, so only the mtime tells: push it into the future
    utimesSync(join(dir, 'hosts'), new Date(), new Date(Date.now() + 5_000));
    expect(await resolver('pinned.test')).toEqual([{ address: '10.8.8.8', family: 4 }]);
    writeFileSync(join(dir, 'hosts'), '127.0.0.1 localhost\n');
    expect(await resolver('pinned.test')).toEqual([{ address: '10.0.0.1', family: 4 }]);
    expect(server.queries.map((q) => `${q.name}/${q.type}`)).toEqual(['pinned.test/A', 'pinned.test/AAAA']);
  });

  it('asks A and AAAA of each name on the search list; "no such name" is ENOTFOUND', async () => {
    const { server, resolver } = await ownDns({ 'db.corp.test': { a: ['10.0.0.2'], aaaa: ['fd00::2'] } }, 'search corp.test\noptions timeout:1 attempts:1\n');
    const addresses = await resolver('db');
    expect(addresses.map((x) => x.address).sort()).toEqual(['10.0.0.2', 'fd00::2']);
    await expect(resolver('nope')).rejects.toMatchObject({ code: 'ENOTFOUND', message: expect.stringMatching(/^no address for "nope" in \/.*hosts or DNS/) });
    await expect(resolver('nope')).rejects.toThrow(/nope\.corp\.test: no such name; nope: no such name/);
    expect(server.queries.filter((q) => q.type === 'A').map((q) => q.name)).toEqual(['db.corp.test', 'nope.corp.test', 'nope', 'nope.corp.test', 'nope']);
  });

  it('a resolver that does not answer: EAI_AGAIN once the budget is spent, saying so', async () => {
    const { resolver } = await ownDns({ 'quiet.test': { silent: true } });
    const t0 = performance.now();
    await expect(resolver('quiet.test', { timeoutMs: 300 })).rejects.toMatchObject({ code: 'EAI_AGAIN', message: expect.stringMatching(/did not answer within 300ms when asked about "quiet\.test"/) });
    expect(performance.now() - t0).toBeLessThan(2_000);
  });

  it('an aborted lookup rejects at once', async () => {
    const { server, resolver } = await ownDns({ 'quiet.test': { silent: true } });
    const controller = new AbortController();
    const pending = resolver('quiet.test', { signal: controller.signal });
    const settled = pending.then(
      () => 'resolved',
      (e: NodeJS.ErrnoException) => e.code,
    );
    // the question has reached the server: the lookup is in flight
    for (const t0 = performance.now(); server.queries.length === 0 && performance.now() - t0 < 2_000; ) await new Promise((r) => setTimeout(r, 5));
    const abortedAt = performance.now();
    controller.abort();
    expect(await settled).toBe('ABORT_ERR');
    expect(performance.now() - abortedAt).toBeLessThan(100);
    await expect(resolver('quiet.test', { signal: controller.signal })).rejects.toMatchObject({ name: 'AbortError' });
  });
});

describe('an aborted lookup leaves nothing pending', () => {
  let dir = '';
  let bundle = '';
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sr-resolve-child-'));
    bundle = join(dir, 'resolve.mjs');
    await build({ entryPoints: [join(ROOT, 'src', 'checks', 'resolve.ts')], bundle: true, platform: 'node', format: 'esm', outfile: bundle, logLevel: 'silent' });
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a process whose lookup was aborted ends on its own at once, though c-ares alone would retry for 10 s', async () => {
    const server = await startDnsServer({ silent: true });
    cleanups.push(() => server.close());
    writeFileSync(join(dir, 'resolv.conf'), 'options timeout:5 attempts:2\n');
    writeFileSync(join(dir, 'hosts'), '');
    // the child aborts once its question has reached the server, then returns: only what the lookup left keeps it alive
    const child = [
      `import { createSystemResolver } from ${JSON.stringify(bundle)};`,
      `const resolver = createSystemResolver({ hostsPath: ${JSON.stringify(join(dir, 'hosts'))}, resolvConfPath: ${JSON.stringify(join(dir, 'resolv.conf'))}, servers: ['127.0.0.1:${server.port}'], env: {} });`,
      'const controller = new AbortController();',
      "resolver('quiet.test', { signal: controller.signal }).catch((e) => process.stdout.write(`${e.code} ${performance.now()}\\n`));",
      "process.stdin.once('data', () => { controller.abort(); process.stdin.destroy(); });",
    ].join('\n');
    const proc = spawn(process.execPath, ['--input-type=module', '-e', child], { stdio: ['pipe', 'pipe', 'pipe'] });
    cleanups.push(() => void (proc.exitCode === null && proc.kill('SIGKILL')));
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
    for (const t0 = performance.now(); server.queries.length === 0 && performance.now() - t0 < 5_000; ) await new Promise((r) => setTimeout(r, 5));
    expect(server.queries.length, stderr).toBeGreaterThan(0);
    const abortedAt = performance.now();
    proc.stdin.write('abort\n');
    expect(await exited, stderr).toBe(0);
    expect(stdout).toMatch(/^ABORT_ERR /);
    expect(performance.now() - abortedAt).toBeLessThan(2_000);
    // no retry went out after the abort
    expect(server.queries.every((q) => q.atMs < server.queries[0]!.atMs + 100)).toBe(true);
  });
});
