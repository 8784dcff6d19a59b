import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RecipeError } from '../../src/errors.js';
import { loadRecipeFile, RELEASE_ID_PATTERN } from '../../src/recipe/load.js';
import { DEFAULTS } from '../../src/recipe/types.js';
import { BASE, load, problems } from './helpers.js';

const FULL = `
version: 1
name: order-service
description: Checkout backend
vars:
  DB_HOST: 10.0.0.5
defaults:
  interval: 250ms
  attempt_timeout: 1.5s
  timeout: 2m
dependencies:
  - tcp: 127.0.0.1:9092
  - tcp: "[::1]:9093"
  - name: broker-v6
    tcp: { host: "::1", port: 9094, state: closed }
  - name: orders-db
    postgres: postgres://orders:pw@\${DB_HOST}:5432/orders
    timeout: 3m
  - mysql: mysql://app@127.0.0.1:3306/app
  - redis: redis://127.0.0.1:6379/0
  - name: inventory
    http:
      url: https://127.0.0.1:8081/healthz
      method: HEAD
      status: [200, "3xx"]
      body: { regex: "^ok$" }
      headers: { X-Trace: "1" }
      ca: /etc/ssl/ca.pem
      insecure: false
      follow_redirects: true
  - http: http://127.0.0.1:8082/ready
  - name: config-valid
    command: ["./bin/order-service", "--check-config"]
    interval: 1000
  - command: test -f /etc/order.conf
release:
  symlink: /srv/order/current
  releases_dir: /srv/order/releases
stop:
  run: systemctl stop order-service
  timeout: 45s
  env: { A: "1" }
  cwd: /srv
start:
  run: [systemctl, start, order-service]
gates:
  - name: healthz
    http: http://127.0.0.1:8080/healthz
    initial_delay: 1s
    success_threshold: 3
    stable_for: 10s
    timeout: 45s
hooks:
  before_stop:
    - name: drain
      run: lb drain
      timeout: 5s
    - tcp: 127.0.0.1:8080
  after_start: []
  on_success:
    - run: lb enable
  on_rollback:
    - run: [lb, enable]
rollback:
  enabled: false
  steps:
    - run: rm -rf /tmp/cache
lock:
  timeout: 5s
notify:
  - url: https://hooks.example/x
    on: [failed]
    headers: { X-Id: "1" }
    format: slack
    timeout: 3s
  - url: http://127.0.0.1:9/notify
confirm: true
`;

describe('loading a recipe that uses every key', () => {
  const { recipe, warnings } = load(FULL);

  it('keeps the top-level values', () => {
    expect(recipe.name).toBe('order-service');
    expect(recipe.description).toBe('Checkout backend');
    expect(recipe.vars).toEqual({ DB_HOST: '10.0.0.5' });
    expect(recipe.confirm).toBe(true);
    expect(recipe.lock).toEqual({ timeoutMs: 5_000 });
    expect(recipe.file).toMatch(/\/r\.yaml$/);
    expect(warnings).toEqual([]);
  });

  it('names checks by type and target and applies defaults', () => {
    const names = recipe.dependencies.map((d) => d.name);
    expect(names).toEqual([
      'tcp 127.0.0.1:9092',
      'tcp [::1]:9093',
      'broker-v6',
      'orders-db',
      'mysql 127.0.0.1:3306/app',
      'redis 127.0.0.1:6379/0',
      'inventory',
      'http http://127.0.0.1:8082/ready',
      'config-valid',
      'command test -f /etc/order.conf',
    ]);
    const [tcp, v6, closed, pg] = recipe.dependencies;
    expect(tcp).toMatchObject({
      type: 'tcp',
      target: '127.0.0.1:9092',
      probe: { type: 'tcp', host: '127.0.0.1', port: 9092, state: 'open' },
      intervalMs: 250,
      attemptTimeoutMs: 1_500,
      timeoutMs: 120_000,
      initialDelayMs: DEFAULTS.initialDelayMs,
      successThreshold: 1,
      stableForMs: 0,
    });
    expect(v6?.probe).toEqual({ type: 'tcp', host: '::1', port: 9093, state: 'open' });
    expect(closed?.probe).toEqual({ type: 'tcp', host: '::1', port: 9094, state: 'closed' });
    expect(pg).toMatchObject({ type: 'postgres', target: '10.0.0.5:5432/orders', timeoutMs: 180_000 });
    expect(pg?.probe).toEqual({ type: 'postgres', url: 'postgres://orders:pw@10.0.0.5:5432/orders' });
  });

  it('normalises an http check with every option', () => {
    const http = recipe.dependencies.find((d) => d.name === 'inventory');
    expect(http?.probe).toEqual({
      type: 'http',
      url: 'https://127.0.0.1:8081/healthz',
      method: 'HEAD',
      status: [
        [200, 200],
        [300, 399],
      ],
      body: { regex: '^ok$' },
      headers: { 'X-Trace': '1' },
      ca: '/etc/ssl/ca.pem',
      insecure: false,
      followRedirects: true,
    });
    const short = recipe.dependencies.find((d) => d.name.startsWith('http '));
    expect(short?.probe).toEqual({
      type: 'http',
      url: 'http://127.0.0.1:8082/ready',
      method: 'GET',
      status: [[200, 299]],
      headers: {},
      insecure: false,
      followRedirects: false,
    });
  });

  it('keeps commands as argv or shell strings; bare integers are milliseconds', () => {
    expect(recipe.dependencies[8]).toMatchObject({ probe: { type: 'command', command: ['./bin/order-service', '--check-config'] }, intervalMs: 1000 });
    expect(recipe.dependencies[9]?.probe).toEqual({ type: 'command', command: 'test -f /etc/order.conf' });
  });

  it('normalises release, stop, start and gates', () => {
    expect(recipe.release).toEqual({ kind: 'symlink', symlink: '/srv/order/current', releasesDir: '/srv/order/releases' });
    expect(recipe.service.kind === 'commands' && recipe.service.stop).toEqual({
      kind: 'run',
      step: { name: 'stop', run: 'systemctl stop order-service', timeoutMs: 45_000, env: { A: '1' }, cwd: '/srv' },
    });
    expect(recipe.service.kind === 'commands' && recipe.service.start).toEqual({
      kind: 'run',
      step: { name: 'start', run: ['systemctl', 'start', 'order-service'], timeoutMs: DEFAULTS.stepTimeoutMs, env: {} },
    });
    expect(recipe.gates[0]).toMatchObject({ name: 'healthz', initialDelayMs: 1_000, successThreshold: 3, stableForMs: 10_000, timeoutMs: 45_000 });
  });

  it('normalises hooks, rollback and notify', () => {
    expect(recipe.hooks.beforeStop[0]).toEqual({ kind: 'step', step: { name: 'drain', run: 'lb drain', timeoutMs: 5_000, env: {} } });
    expect(recipe.hooks.beforeStop[1]).toMatchObject({ kind: 'check', check: { name: 'tcp 127.0.0.1:8080' } });
    expect(recipe.hooks.afterStart).toEqual([]);
    expect(recipe.hooks.onSuccess[0]).toMatchObject({ kind: 'step', step: { name: 'lb enable', run: 'lb enable' } });
    expect(recipe.hooks.onRollback[0]).toMatchObject({ kind: 'step', step: { run: ['lb', 'enable'] } });
    expect(recipe.rollback).toEqual({ enabled: false, steps: [{ name: 'rm -rf /tmp/cache', run: 'rm -rf /tmp/cache', timeoutMs: 60_000, env: {} }] });
    expect(recipe.notify).toEqual([
      { url: 'https://hooks.example/x', on: ['failed'], headers: { 'X-Id': '1' }, format: 'slack', timeoutMs: 3_000 },
      { url: 'http://127.0.0.1:9/notify', on: ['succeeded', 'rolled_back', 'failed'], headers: {}, format: 'json', timeoutMs: 10_000 },
    ]);
  });
});

describe('defaults of a minimal recipe', () => {
  it('applies DEFAULTS and leaves optional sections empty', () => {
    const { recipe } = load(`${BASE}gates:\n  - tcp: 127.0.0.1:80\n`);
    expect(recipe.gates[0]).toMatchObject({
      intervalMs: DEFAULTS.intervalMs,
      attemptTimeoutMs: DEFAULTS.attemptTimeoutMs,
      timeoutMs: DEFAULTS.timeoutMs,
      initialDelayMs: 0,
      successThreshold: 1,
      stableForMs: 0,
    });
    expect(recipe.release).toBeUndefined();
    expect(recipe.dependencies).toEqual([]);
    expect(recipe.rollback).toEqual({ enabled: true, steps: [] });
    expect(recipe.lock).toEqual({ timeoutMs: 0 });
    expect(recipe.notify).toEqual([]);
    expect(recipe.confirm).toBe(false);
  });

  it('shrinks the built-in attempt timeout to a shorter check timeout', () => {
    const { recipe } = load(`${BASE}gates:\n  - tcp: 127.0.0.1:80\n    timeout: 500ms\n`);
    expect(recipe.gates[0]).toMatchObject({ timeoutMs: 500, attemptTimeoutMs: 500 });
  });

  it('reads signal stops, spawn starts and command releases', () => {
    const { recipe } = load(`version: 1
name: svc
release:
  current: { run: cat /srv/ACTIVE }
  activate: { run: 'deploy "$SAFE_RESTART_RELEASE"', timeout: 20s }
stop:
  signal: SIGINT
  pidfile: /run/svc.pid
  grace: 5s
start:
  spawn: [node, server.js]
  pidfile: /run/svc.pid
  log: /var/log/svc.log
  cwd: /srv/current
  env: { PORT: "8080" }
`);
    expect(recipe.release).toEqual({
      kind: 'command',
      current: { name: 'current release', run: 'cat /srv/ACTIVE', timeoutMs: 60_000, env: {} },
      activate: { name: 'activate release', run: 'deploy "$SAFE_RESTART_RELEASE"', timeoutMs: 20_000, env: {} },
    });
    expect(recipe.service.kind === 'commands' && recipe.service.stop).toEqual({ kind: 'signal', signal: 'SIGINT', pidfile: '/run/svc.pid', graceMs: 5_000, timeoutMs: 60_000 });
    expect(recipe.service.kind === 'commands' && recipe.service.start).toEqual({
      kind: 'spawn',
      argv: ['node', 'server.js'],
      pidfile: '/run/svc.pid',
      log: '/var/log/svc.log',
      cwd: '/srv/current',
      env: { PORT: '8080' },
      timeoutMs: 60_000,
    });
  });
});

describe('schema errors point at the offending node', () => {
  it('reports an unknown key at the key, with a suggestion', () => {
    expect(problems(`${BASE}gates:\n  - tcp: 127.0.0.1:80\n    stabel_for: 1s\n`)).toContain(
      'r.yaml:9:5: gates[0].stabel_for: unknown key "stabel_for"; did you mean "stable_for"?',
    );
    expect(problems(`${BASE}dependecies: []\n`)).toContain('r.yaml:7:1: dependecies: unknown key "dependecies"; did you mean "dependencies"?');
    expect(problems(`${BASE}zzz: 1\n`)).toContain('r.yaml:7:1: zzz: unknown key "zzz"');
  });

  it('suggests keys of the object at that path only', () => {
    expect(problems(`${BASE}gates:\n  - http: { url: "http://x/", staus: 200 }\n`)).toContain(
      'r.yaml:8:31: gates[0].http.staus: unknown key "staus"; did you mean "status"?',
    );
  });

  it('reports wrong types and values with what it got', () => {
    const lines = problems('version: 2\nname: Svc\nconfirm: no\nstop: { run: 5 }\nstart:\n  spawn: []\n');
    expect(lines).toEqual([
      'r.yaml:1:10: version: expected 1 (got 2)',
      'r.yaml:2:7: name: expected 1 to 63 characters of a-z, 0-9, ".", "_" or "-", starting with a letter or digit (got "Svc")',
      'r.yaml:3:10: confirm: expected true or false (YAML 1.2: only true and false are booleans) (got "no")',
      'r.yaml:4:14: stop.run: expected a command: a string (run by /bin/sh -c) or a list of arguments (got 5)',
      'r.yaml:6:10: start.spawn: must not be an empty list (got [])',
    ]);
  });

  it('reports missing required keys at the mapping that lacks them', () => {
    expect(problems('name: svc\nstop: { run: x }\nstart: { run: y }\n')).toEqual(['r.yaml:1:1: version: expected 1 (got nothing)']);
  });

  it('a recipe has either service or both stop and start, and says which it got', () => {
    expect(problems('version: 1\nname: svc\nstop: { run: x }\n')).toEqual(['r.yaml:3:1: stop: stop needs start too (or use service: for a systemd unit or supervisord program)']);
    expect(problems('version: 1\nname: svc\n')).toEqual(['r.yaml:1:1: the recipe needs service (systemd: UNIT, or supervisor: { program }) or both stop and start (got neither)']);
    expect(problems('version: 1\nname: svc\nservice: { systemd: web }\nstart: { run: x }\n')).toEqual([
      'r.yaml:4:1: start: a recipe has either service or stop + start, not both: service (systemd web) already starts the service – remove start:',
    ]);
    expect(problems('version: 1\nname: svc\nservice: { supervisor: { program: w }, reload: true }\n')).toEqual([
      'r.yaml:3:40: service.reload: service.reload is for systemd units (systemctl reload); supervisord programs restart',
    ]);
  });

  it('service: a unit name gets its .service suffix; timeouts become milliseconds', () => {
    const { recipe: r } = load('version: 1\nname: svc\nservice: { systemd: order-service, stop_timeout: 30s }\n');
    expect(r.service).toEqual({ kind: 'systemd', unit: 'order-service.service', reload: false, stopTimeoutMs: 30_000, startTimeoutMs: null });
    const { recipe: s } = load('version: 1\nname: svc\nservice: { supervisor: { program: w, config: /etc/s.conf } }\n');
    expect(s.service).toEqual({ kind: 'supervisor', program: 'w', config: '/etc/s.conf', stopTimeoutMs: null, startTimeoutMs: null });
  });

  it('picks the union branch the user meant', () => {
    expect(problems(`${BASE}gates:\n  - http: { url: http://x/, status: "200" }\n`)).toEqual([
      'r.yaml:8:37: gates[0].http.status: expected a status class like "2xx" (got "200")',
    ]);
    expect(problems(`${BASE}gates:\n  - http: { url: http://x/, status: 600 }\n`)).toEqual([
      'r.yaml:8:37: gates[0].http.status: must be at most 599 (got 600)',
    ]);
    expect(problems(`${BASE}gates:\n  - tcp: 8080\n`)).toEqual(['r.yaml:8:10: gates[0].tcp: expected "host:port" or a mapping { host, port } (got 8080)']);
    expect(problems(`${BASE}gates:\n  - tcp: { host: a, port: 70000 }\n`)).toEqual(['r.yaml:8:27: gates[0].tcp.port: must be at most 65535 (got 70000)']);
    expect(problems(`${BASE}gates:\n  - tcp: a:1\n    timeout: 30 s\n`)).toEqual([
      'r.yaml:9:14: gates[0].timeout: expected a duration like 250ms, 1.5s, 2m or 1h (got "30 s")',
    ]);
    expect(problems(`${BASE}gates:\n  - tcp: a:1\n    timeout: true\n`)).toEqual([
      'r.yaml:9:14: gates[0].timeout: expected a duration like 250ms, 1.5s, 2m or 1h, or a whole number of milliseconds (got true)',
    ]);
  });

  it('reports a hook item that is neither step nor check against the closest branch', () => {
    expect(problems(`${BASE}hooks:\n  before_stop:\n    - rn: lb drain\n`)).toEqual(['r.yaml:9:7: hooks.before_stop[0].rn: unknown key "rn"; did you mean "run"?']);
  });

  it('names both kinds when a hook item mixes a step and a check', () => {
    const kinds = 'must be a step (run) or a check (tcp, http, postgres, mysql, redis, command, recipe), not both';
    expect(problems(`${BASE}hooks:\n  before_stop:\n    - run: lb drain\n      tcp: 127.0.0.1:80\n`)).toEqual([`r.yaml:9:7: hooks.before_stop[0]: ${kinds}: found "run" and "tcp"`]);
    // every check key found is named, and a key neither kind knows is still reported on its own
    expect(problems(`${BASE}hooks:\n  on_success:\n    - name: ping\n      run: ["true"]\n      http: http://127.0.0.1/\n      interval: 1s\n      bogus: 1\n`)).toEqual([
      `r.yaml:9:7: hooks.on_success[0]: ${kinds}: found "run" and "http", "interval"`,
      'r.yaml:13:7: hooks.on_success[0].bogus: unknown key "bogus"',
    ]);
  });

  it('reports every problem of the file at once, in file order', () => {
    const lines = problems(`version: 1\nname: svc\nstop: { run: x, tmeout: 1s }\nstart: { run: y }\ngates:\n  - tcp: a:1\n    interval: -1\n`);
    expect(lines).toEqual([
      'r.yaml:3:17: stop.tmeout: unknown key "tmeout"; did you mean "timeout"?',
      'r.yaml:7:15: gates[0].interval: must be at least 0 (got -1)',
    ]);
  });
});

describe('loadRecipeFile', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sr-load-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('loads a file relative to cwd and names it as given', async () => {
    await writeFile(join(dir, 'a.yaml'), BASE);
    const { recipe } = await loadRecipeFile('a.yaml', { cwd: dir, env: {} });
    expect(recipe.file).toBe(join(dir, 'a.yaml'));
    await writeFile(join(dir, 'b.yaml'), `${BASE}bogus: 1\n`);
    await expect(loadRecipeFile('b.yaml', { cwd: dir, env: {} })).rejects.toThrow('b.yaml:7:1: bogus: unknown key "bogus"');
  });

  it('reports a missing file as a recipe problem', async () => {
    const error = await loadRecipeFile('nope.yaml', { cwd: dir }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RecipeError);
    expect((error as RecipeError).message).toBe('nope.yaml:1:1: cannot read the recipe: no such file');
    expect((error as RecipeError).exitCode).toBe(65);
  });

  it('warns (does not fail) when the file is world-writable', async () => {
    const file = join(dir, 'ww.yaml');
    await writeFile(file, BASE);
    await chmod(file, 0o666);
    const { warnings } = await loadRecipeFile(file, { env: {} });
    expect(warnings).toEqual([`${file}:1:1: warning: the recipe file is world-writable (mode 0666); anyone on this host can change what safe-restart runs`]);
  });

  it('refuses a file over 1 MiB before reading it', async () => {
    const file = join(dir, 'big.yaml');
    await writeFile(file, `${BASE}description: "${'x'.repeat(1024 * 1024)}"\n`);
    await expect(loadRecipeFile(file)).rejects.toThrow(/at most 1048576 bytes \(1 MiB\)/);
  });

  it('refuses invalid UTF-8', async () => {
    const file = join(dir, 'latin1.yaml');
    await writeFile(file, Buffer.concat([Buffer.from(`${BASE}description: caf`), Buffer.from([0xe9, 0x0a])]));
    await expect(loadRecipeFile(file)).rejects.toThrow(`${file}:1:1: the file is not valid UTF-8 text`);
  });
});

describe('RELEASE_ID_PATTERN', () => {
  it.each(['2026-11-21', 'v1.2.3', 'a_b', '0'])('accepts %s', (id) => expect(RELEASE_ID_PATTERN.test(id)).toBe(true));
  it.each(['', '.', '..', '-x', 'a/b', '../etc', 'a b', 'a;rm', '$(x)'])('refuses %j', (id) => expect(RELEASE_ID_PATTERN.test(id)).toBe(false));
});
