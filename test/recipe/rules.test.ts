import { describe, expect, it } from 'vitest';
import { BASE, load, problems } from './helpers.js';

const gate = (body: string) => `${BASE}gates:\n  - tcp: 127.0.0.1:80\n${body}`;

describe('check timing rules print both values', () => {
  it('stable_for must be shorter than timeout', () => {
    expect(problems(gate('    stable_for: 30s\n    timeout: 20s\n'))).toEqual([
      'r.yaml:9:17: gates[0].stable_for: 30s must be shorter than gates[0].timeout (20s)',
    ]);
    expect(problems(gate('    stable_for: 90s\n'))).toEqual(['r.yaml:9:17: gates[0].stable_for: 90s must be shorter than gates[0].timeout (1m, the default)']);
    expect(problems(`${BASE}defaults: { timeout: 5s }\ngates:\n  - tcp: a:1\n    stable_for: 5s\n`)).toEqual([
      'r.yaml:10:17: gates[0].stable_for: 5s must be shorter than defaults.timeout (5s)',
    ]);
  });

  it('initial_delay must be shorter than timeout', () => {
    expect(problems(gate('    initial_delay: 20000\n    timeout: 20s\n'))).toEqual([
      'r.yaml:9:20: gates[0].initial_delay: 20000ms must be shorter than gates[0].timeout (20s)',
    ]);
  });

  it('attempt_timeout must be at most timeout', () => {
    expect(problems(gate('    attempt_timeout: 5s\n    timeout: 2s\n'))).toEqual([
      'r.yaml:9:22: gates[0].attempt_timeout: 5s must be at most gates[0].timeout (2s)',
    ]);
    expect(problems(`${BASE}defaults: { attempt_timeout: 5s }\ngates:\n  - tcp: a:1\n    timeout: 2s\n`)).toEqual([
      'r.yaml:10:14: gates[0].timeout: defaults.attempt_timeout (5s) must be at most gates[0].timeout (2s)',
    ]);
    expect(load(gate('    attempt_timeout: 2s\n    timeout: 2s\n')).recipe.gates[0]).toMatchObject({ attemptTimeoutMs: 2000, timeoutMs: 2000 });
  });

  it('interval, attempt_timeout and timeout must be greater than 0', () => {
    expect(problems(gate('    interval: 0s\n    attempt_timeout: 0\n'))).toEqual([
      'r.yaml:9:15: gates[0].interval: must be greater than 0 (got 0s)',
      'r.yaml:10:22: gates[0].attempt_timeout: must be greater than 0 (got 0ms)',
    ]);
    expect(problems(`${BASE}defaults: { interval: 0ms }\n`)).toEqual(['r.yaml:7:23: defaults.interval: must be greater than 0 (got 0ms)']);
    expect(problems(gate('    timeout: 0s\n'))).toEqual(['r.yaml:9:14: gates[0].timeout: gates[0].timeout must be greater than 0 (got 0s)']);
  });

  it('refuses durations timers cannot hold', () => {
    expect(problems(gate('    timeout: 1000h\n'))).toEqual(['r.yaml:9:14: gates[0].timeout: must be at most 596h31m23.647s (got 1000h)']);
  });

  it('reports every rule violation together', () => {
    const lines = problems(`${BASE}gates:
  - tcp: a:1
    stable_for: 30s
    timeout: 20s
  - http: http://x/
    initial_delay: 1m
    timeout: 1m
dependencies:
  - tcp: b:1
    attempt_timeout: 3s
    timeout: 1s
`);
    expect(lines).toHaveLength(3);
  });
});

describe('check shape rules', () => {
  it('needs exactly one check type', () => {
    expect(problems(`${BASE}gates:\n  - name: x\n`)).toEqual(['r.yaml:8:5: gates[0]: a check needs exactly one of tcp, http, postgres, mysql, redis, command, recipe (got none)']);
    expect(problems(`${BASE}gates:\n  - tcp: a:1\n    http: http://a/\n`)).toEqual([
      'r.yaml:9:5: gates[0].http: a check has exactly one type, but this one has tcp and http; split it into 2 checks',
    ]);
  });

  it('needs unique names per list (explicit or default)', () => {
    expect(problems(`${BASE}gates:\n  - tcp: a:1\n  - tcp: a:1\n  - name: x\n    tcp: b:1\n  - name: x\n    tcp: c:1\n`)).toEqual([
      'r.yaml:9:5: gates[1]: check name "tcp a:1" is already used by gates[0]; names are unique per list (add a distinct name:)',
      'r.yaml:12:5: gates[3]: check name "x" is already used by gates[2]; names are unique per list (add a distinct name:)',
    ]);
    // The same name in two different lists is fine.
    expect(load(`${BASE}gates:\n  - tcp: a:1\ndependencies:\n  - tcp: a:1\n`).recipe.gates).toHaveLength(1);
  });

  it.each([
    ['localhost', 'expected "host:port" (write an IPv6 address as "[::1]:port")'],
    ['::1:80', 'expected "host:port" (write an IPv6 address as "[::1]:port")'],
    ['a:0', 'port must be a number from 1 to 65535'],
    ['a:65536', 'port must be a number from 1 to 65535'],
    ['a:http', 'port must be a number from 1 to 65535'],
    ['a:', 'port must be a number from 1 to 65535'],
  ])('refuses the tcp shorthand %j', (target, message) => {
    expect(problems(`${BASE}gates:\n  - tcp: "${target}"\n`)).toEqual([`r.yaml:8:10: gates[0].tcp: ${message} (got "${target}")`]);
  });

  it('parses IPv6 and hostnames in the tcp shorthand', () => {
    const { recipe } = load(`${BASE}gates:\n  - tcp: "[::1]:65535"\n  - tcp: db.internal:1\n`);
    expect(recipe.gates.map((g) => g.probe)).toEqual([
      { type: 'tcp', host: '::1', port: 65535, state: 'open' },
      { type: 'tcp', host: 'db.internal', port: 1, state: 'open' },
    ]);
  });

  it('accepts http and https URLs only', () => {
    expect(problems(`${BASE}gates:\n  - http: ftp://x/\n  - http: { url: "not a url" }\n  - http: http://x:99999/\n`)).toEqual([
      'r.yaml:8:11: gates[0].http: expected a http:// or https:// URL, not ftp:// (got "ftp://x/")',
      'r.yaml:9:18: gates[1].http.url: expected a http:// or https:// URL (got "not a url")',
      'r.yaml:10:11: gates[2].http: port must be a number from 1 to 65535 (got "http://x:99999/")',
    ]);
  });

  it('checks database URL schemes', () => {
    expect(problems(`${BASE}gates:\n  - postgres: mysql://x/db\n  - redis: http://x/\n  - mysql: mysql://app@h/db\n`)).toEqual([
      'r.yaml:8:15: gates[0].postgres: expected a postgres:// or postgresql:// URL, not mysql:// (got "mysql://x/db")',
      'r.yaml:9:12: gates[1].redis: expected a redis:// or rediss:// URL, not http:// (got "http://x/")',
    ]);
  });

  it('checks body regexes compile', () => {
    expect(problems(`${BASE}gates:\n  - http: { url: "http://x/", body: { regex: "(" } }\n`)[0]).toMatch(
      /^r\.yaml:8:46: gates\[0\]\.http\.body\.regex: invalid regular expression: .* \(got "\("\)$/,
    );
  });

  it('warns about insecure: true', () => {
    const { warnings } = load(`${BASE}gates:\n  - http: { url: "https://x/", insecure: true }\n`);
    expect(warnings).toEqual(['r.yaml:8:42: warning: gates[0].http.insecure: TLS certificate verification is disabled (insecure: true)']);
  });

  it('checks hook items', () => {
    expect(problems(`${BASE}hooks:\n  on_success:\n    - name: only-a-name\n`)).toEqual([
      'r.yaml:9:7: hooks.on_success[0]: a hook item needs run (a step) or one check type (tcp, http, postgres, mysql, redis, command, recipe) (got neither)',
    ]);
  });
});

describe('release, stop and start rules', () => {
  const recipe = (release: string, stop = 'stop: { run: x }', start = 'start: { run: y }') => `version: 1\nname: svc\n${release}\n${stop}\n${start}\n`;

  it('symlink needs releases_dir and the other way round', () => {
    expect(problems(recipe('release: { symlink: /srv/current }'))).toEqual([
      'r.yaml:3:12: release.symlink: release.symlink (/srv/current) needs release.releases_dir, where --release ID is looked up (got none)',
    ]);
    expect(problems(recipe('release: { releases_dir: /srv/r }'))).toEqual([
      'r.yaml:3:12: release.releases_dir: release.releases_dir (/srv/r) needs release.symlink, the link to switch (got none)',
    ]);
  });

  it('current needs activate and the other way round; not mixed with symlink', () => {
    expect(problems(recipe('release: { current: { run: cat x } }'))).toEqual([
      'r.yaml:3:12: release.current: release.current needs release.activate, the command that switches releases (got none)',
    ]);
    expect(problems(recipe('release: { activate: { run: a } }'))).toEqual([
      'r.yaml:3:12: release.activate: release.activate needs release.current, the command that prints the active release (got none)',
    ]);
    expect(problems(recipe('release: { symlink: /a, releases_dir: /b, current: { run: c } }'))).toEqual([
      'r.yaml:3:43: release.current: use either symlink + releases_dir or current + activate, not both',
    ]);
    expect(problems(recipe('release: {}'))).toEqual(['r.yaml:3:10: release: release needs symlink + releases_dir, or current + activate (got neither)']);
  });

  it('stop has exactly one of run or signal; signal needs pidfile and a real signal', () => {
    expect(problems(recipe('', 'stop: { run: x, signal: SIGTERM, pidfile: /p }'))).toEqual([
      'r.yaml:4:17: stop.signal: stop has exactly one of run or signal (got both: run and signal SIGTERM)',
    ]);
    expect(problems(recipe('', 'stop: { timeout: 5s }'))).toEqual(['r.yaml:4:7: stop: stop needs one of run or signal (got neither)']);
    expect(problems(recipe('', 'stop: { signal: SIGTERM }'))).toEqual([
      'r.yaml:4:9: stop.signal: stop.signal (SIGTERM) needs stop.pidfile, the file holding the pid to signal (got none)',
    ]);
    expect(problems(recipe('', 'stop: { signal: SIGFOO, pidfile: /p }'))).toEqual(['r.yaml:4:17: stop.signal: unknown signal (got "SIGFOO")']);
    expect(problems(recipe('', 'stop: { signal: sigterm, pidfile: /p }'))).toEqual(['r.yaml:4:17: stop.signal: expected a signal name like SIGTERM (got "sigterm")']);
  });

  it('start has exactly one of run or spawn; spawn needs pidfile', () => {
    expect(problems(recipe('', undefined, 'start: { run: y, spawn: [y], pidfile: /p }'))).toEqual([
      'r.yaml:5:18: start.spawn: start has exactly one of run or spawn (got both)',
    ]);
    expect(problems(recipe('', undefined, 'start: { cwd: /x }'))).toEqual(['r.yaml:5:8: start: start needs one of run or spawn (got neither)']);
    expect(problems(recipe('', undefined, 'start: { spawn: [node, s.js] }'))).toEqual([
      'r.yaml:5:10: start.spawn: start.spawn needs start.pidfile, where safe-restart writes the pid (got none)',
    ]);
  });

  it('warns about keys that do nothing in that combination', () => {
    const { warnings } = load(recipe('', 'stop: { run: x, grace: 5s }', 'start: { run: y, log: /l }'));
    expect(warnings).toEqual([
      'r.yaml:4:17: warning: stop.grace: stop.grace only applies with stop.signal; ignored',
      'r.yaml:5:18: warning: start.log: start.log only applies with start.spawn; ignored',
    ]);
  });

  it('checks notify URLs', () => {
    expect(problems(`${BASE}notify:\n  - url: mailto:x@y\n`)).toEqual(['r.yaml:8:10: notify[0].url: expected a http:// or https:// URL, not mailto:// (got "mailto:x@y")']);
  });
});
