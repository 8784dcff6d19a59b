// systemResolver against glibc itself: each run gets fresh network, mount and UTS namespaces with the test's own
// /etc/hosts, /etc/resolv.conf and host name, and a DNS server of its own on 127.0.0.1:53, so no query reaches the
// machine's resolver (it stops answering after a burst). Every name is resolved by getaddrinfo (dns.lookup) and by
// systemResolver: same addresses in the same order, or the same error, after asking the same names.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..', '..');
const HARNESS = join(ROOT, 'test', 'fixtures', 'dns', 'compare-in-netns.mjs');
// Namespaces need root (or user namespaces); without them glibc could only be compared through the real resolver.
const canUnshare = spawnSync('unshare', ['-mnu', '--propagation', 'private', 'true']).status === 0;

interface Side {
  addresses?: string[];
  code?: string;
  message?: string;
  asked: string[];
  ms: number;
}

interface Compared {
  name: string;
  glibc: Side;
  ours: Side;
}

const HOSTS = [
  '# the test\'s own hosts file',
  '127.0.0.1\tlocalhost',
  '127.0.0.2 Mixed.Example  alias1 # a comment after the names',
  '::1 localhost ip6-localhost',
  '10.0.0.5 multi',
  'fd00::5 multi',
  '10.0.0.6 multi',
  '10.0.0.7 dup',
  '10.0.0.7 dup',
  'not-an-address broken',
  '127.1 short-form',
  'fe80::1%lo scoped',
  '10.0.0.8 dotted.',
  '',
].join('\n');

const RECORDS = {
  'both.test': { a: ['10.1.2.3'], aaaa: ['fd00::1'] },
  'v6.test': { aaaa: ['fd00::7', '::1'] },
  'v4.test': { a: ['10.1.2.4', '10.1.2.5'] },
  'web.example.test': { a: ['10.2.0.1'] },
  'web.corp.test': { a: ['10.3.0.1'] },
  'api.corp.test': { a: ['10.3.0.2'] },
  'fail.example.test': { rcode: 'servfail' },
  'fail.corp.test': { a: ['10.3.0.3'] },
  'ref.example.test': { rcode: 'refused' },
  'ref.corp.test': { a: ['10.3.0.4'] },
  'nodata.example.test': {},
  'two.labels': { a: ['10.4.0.1'] },
  'two.labels.example.test': { a: ['10.4.0.2'] },
  'deep.x.corp.test': { a: ['10.5.0.1'] },
  'deep.x': { a: ['10.5.0.2'] },
  'half.test': { a: ['10.6.0.1'], silent: 'AAAA' },
};

let dir = '';
let bundle = '';
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sr-resolve-glibc-'));
  bundle = join(dir, 'resolve.mjs');
  await build({ entryPoints: [join(ROOT, 'src', 'checks', 'resolve.ts')], bundle: true, platform: 'node', format: 'esm', outfile: bundle, logLevel: 'silent' });
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/**
 * network 'own': a fresh network namespace with our DNS server (only loopback: no route to 10/8 or fd00::/8), 'own+10/8':
 * the same with a route to 10/8; 'host': the machine's routes, hosts-file names only.
 */
function compare(resolvConf: string, names: string[], hostname = 'box', network: 'own' | 'own+10/8' | 'host' = 'own'): Promise<Compared[]> {
  const tag = `${Math.random()}`.slice(2);
  const hosts = join(dir, `hosts-${tag}`);
  const conf = join(dir, `resolv-${tag}`);
  writeFileSync(hosts, HOSTS);
  writeFileSync(conf, resolvConf);
  const own = network !== 'host';
  const config = JSON.stringify({ bundle, hostname, names, records: own ? RECORDS : null });
  const setup = own ? `ip link set lo up && ${network === 'own+10/8' ? 'ip addr add 10.0.0.1/8 dev lo && ' : ''}` : '';
  const script = `mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/resolv.conf && ${setup}exec "$3" "$4" "$5"`;
  return new Promise((resolveRun, reject) => {
    const child = spawn('unshare', [own ? '-mnu' : '-mu', '--propagation', 'private', '--', 'sh', '-c', script, 'sh', hosts, conf, process.execPath, HARNESS, config], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const killer = setTimeout(() => child.kill('SIGKILL'), 50_000);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(killer);
      try {
        resolveRun((JSON.parse(stdout.trim().split('\n').at(-1) ?? '') as { results: Compared[] }).results);
      } catch {
        reject(new Error(`namespace harness failed (exit ${code}): ${stderr}${stdout}`));
      }
    });
  });
}

// glibc says EAI_FAIL when a server answers REFUSED; the checks know ENOTFOUND and EAI_AGAIN, and a refusal is the
// resolver's trouble, not the name's: EAI_AGAIN here.
const OUR_CODE: Record<string, string> = { EAI_FAIL: 'EAI_AGAIN' };

function expectSame(results: Compared[]): void {
  for (const { name, glibc, ours } of results) {
    const label = `${name}: glibc ${JSON.stringify(glibc)}, ours ${JSON.stringify(ours)}`;
    if (glibc.addresses) expect(ours.addresses, label).toEqual(glibc.addresses);
    else expect(ours.code, label).toBe(OUR_CODE[glibc.code ?? ''] ?? glibc.code);
    expect(ours.asked, label).toEqual(glibc.asked);
  }
}

describe.skipIf(!canUnshare)('systemResolver resolves as glibc does (own namespaces, own hosts file, own DNS server)', () => {
  it('IP literals, the hosts file, the search list with ndots:1, SERVFAIL, REFUSED and NODATA on the way', async () => {
    const names = [
      ...['127.1', '2130706433', '0x7f.1', '::FFFF:127.0.0.1', '10.9.8.7'],
      ...['localhost', 'LOCALHOST', 'localhost.', 'mixed.example', 'ALIAS1', 'ip6-localhost', 'multi', 'dup', 'dotted.', 'dotted', 'short-form', 'scoped', 'broken'],
      ...['both.test', 'v6.test', 'v4.test', 'web', 'api', 'fail', 'ref', 'nodata', 'nx', 'two.labels', 'two.labels.', 'deep.x'],
    ];
    const results = await compare('nameserver 127.0.0.1\nsearch example.test corp.test\noptions ndots:1 timeout:1 attempts:1\n', names);
    expect(results.map((r) => r.name)).toEqual(names);
    expectSame(results);
  });

  it('ndots:2, no-tld-query, and the host name\'s domain as the search list when resolv.conf gives none', async () => {
    const names = ['web', 'api', 'deep.x', 'two.labels', 'nx', 'nx.y'];
    const results = await compare('nameserver 127.0.0.1\noptions ndots:2 no-tld-query timeout:1 attempts:1\n', names, 'box.corp.test');
    expectSame(results);
    expect(results.find((r) => r.name === 'deep.x')?.ours.addresses).toEqual(['10.5.0.1']);
  });

  it('orders reachable addresses first, as glibc does (a route to 10/8, none to fd00::/8)', async () => {
    const results = await compare('nameserver 127.0.0.1\n', ['multi', 'both.test', 'v6.test', 'localhost'], 'box', 'own+10/8');
    expectSame(results);
    expect(results.find((r) => r.name === 'both.test')?.ours.addresses).toEqual(['10.1.2.3', 'fd00::1']);
  });

  it('orders addresses as glibc does with the machine\'s own routes (hosts-file names: no query leaves)', async () => {
    // nothing listens on the machine's 127.0.0.1:53, so even a stray query would be refused at once
    const results = await compare('nameserver 127.0.0.1\n', ['localhost', 'multi', 'dup', 'mixed.example', 'ip6-localhost'], 'box', 'host');
    expectSame(results);
    for (const r of results) expect(r.glibc.asked).toEqual([]);
  });

  it('an A answer whose AAAA never comes: both wait out the timeout, then return the A answer', async () => {
    const results = await compare('nameserver 127.0.0.1\noptions timeout:1 attempts:1\n', ['half.test']);
    expectSame(results);
    expect(results[0]?.ours.addresses).toEqual(['10.6.0.1']);
  });
});
