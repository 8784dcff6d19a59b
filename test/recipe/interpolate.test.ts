import { describe, expect, it } from 'vitest';
import { interpolateString, parseTemplate } from '../../src/recipe/interpolate.js';
import { Redactor } from '../../src/redact.js';
import { bindTemplate, showTemplate, type RuntimeVars } from '../../src/recipe/runtime-vars.js';

const RUNTIME: RuntimeVars = {
  SAFE_RESTART_NAME: 'svc',
  SAFE_RESTART_RUN_ID: 'r1',
  SAFE_RESTART_RELEASE: 'v2',
  SAFE_RESTART_PREVIOUS_RELEASE: 'v1',
  SAFE_RESTART_TARGET_RELEASE: '',
  SAFE_RESTART_PHASE: 'before_stop',
  SAFE_RESTART_SLOT: '',
  SAFE_RESTART_PORT: '',
};
import { BASE, load, problems } from './helpers.js';

const lookup = (vars: Record<string, string>) => (name: string) => vars[name];

describe('interpolateString', () => {
  it('replaces ${NAME} and uses defaults only when undefined or empty', () => {
    expect(interpolateString('${A}-${B:-dflt}-${C:-}', lookup({ A: 'a' }))).toEqual({ ok: true, value: 'a-dflt-', used: ['A'] });
    expect(interpolateString('${A:-x}', lookup({ A: '' }))).toMatchObject({ ok: true, value: 'x' });
    expect(interpolateString('${A}', lookup({ A: '' }))).toMatchObject({ ok: true, value: '' });
    expect(interpolateString('${A:-a:-b}', lookup({}))).toMatchObject({ ok: true, value: 'a:-b' });
  });

  it('writes $${ as a literal ${ and leaves $NAME and $$ alone', () => {
    expect(interpolateString('$${HOME} $HOME $$ $1 ${A}', lookup({ A: 'x' }))).toMatchObject({ ok: true, value: '${HOME} $HOME $$ $1 x' });
  });

  it('never re-scans a substituted value', () => {
    expect(interpolateString('${A}', lookup({ A: '${B}', B: 'no' }))).toMatchObject({ ok: true, value: '${B}' });
  });

  it('lists every missing variable once', () => {
    expect(interpolateString('${A} ${B} ${A} ${C:-c}', lookup({}))).toEqual({ ok: false, missing: ['A', 'B'] });
  });

  it('refuses malformed references', () => {
    expect(parseTemplate('${1X}')).toMatchObject({ ok: false, error: expect.stringContaining('invalid reference "${1X}"') });
    expect(parseTemplate('${A-x}')).toMatchObject({ ok: false });
    expect(parseTemplate('${}')).toMatchObject({ ok: false });
    expect(parseTemplate('abc ${A')).toMatchObject({ ok: false, error: expect.stringContaining('unterminated') });
  });
});

describe('interpolation in recipes', () => {
  const recipe = (extra: string) => `${BASE}${extra}`;

  it('follows --var > vars > environment precedence', () => {
    const text = recipe('vars:\n  A: from-vars\n  B: from-vars\ndescription: ${A} ${B} ${C}\n');
    const { recipe: r } = load(text, { vars: { A: 'from-cli' }, env: { A: 'from-env', B: 'from-env', C: 'from-env' } });
    expect(r.description).toBe('from-cli from-vars from-env');
    expect(r.vars).toEqual({ A: 'from-cli', B: 'from-vars' });
  });

  it('lets a var use only earlier vars; a var naming itself reads the environment', () => {
    const text = recipe('vars:\n  HOST: ${HOST:-localhost}\n  URL: http://${HOST}:${PORT}/\n  PORT: "80"\ndescription: ${URL}\n');
    const { recipe: r } = load(text, { env: { HOST: 'db.internal', PORT: '9000' } });
    expect(r.vars.HOST).toBe('db.internal');
    // PORT is defined after URL, so URL sees the environment's PORT, not the var.
    expect(r.description).toBe('http://db.internal:9000/');
    expect(problems(recipe('vars:\n  URL: ${LATER}\n  LATER: x\n'))).toEqual([
      'r.yaml:8:8: vars.URL: undefined variable ${LATER}: pass --var LATER=..., define it under vars or in the environment, or write ${LATER:-default}',
    ]);
  });

  it('does not evaluate a var that --var overrides', () => {
    const { recipe: r } = load(recipe('vars:\n  A: ${UNDEFINED}\ndescription: ${A}\n'), { vars: { A: 'cli' } });
    expect(r.description).toBe('cli');
  });

  it('reports every undefined reference at once, each at its location', () => {
    const text = recipe('vars:\n  A: ${MISSING_1}\ndependencies:\n  - tcp: ${HOST}:${PORT}\n  - postgres: postgres://u@${HOST}/db\n');
    expect(problems(text)).toEqual([
      'r.yaml:8:6: vars.A: undefined variable ${MISSING_1}: pass --var MISSING_1=..., define it under vars or in the environment, or write ${MISSING_1:-default}',
      'r.yaml:10:10: dependencies[0].tcp: undefined variable ${HOST}: pass --var HOST=..., define it under vars or in the environment, or write ${HOST:-default}',
      'r.yaml:10:10: dependencies[0].tcp: undefined variable ${PORT}: pass --var PORT=..., define it under vars or in the environment, or write ${PORT:-default}',
      'r.yaml:11:15: dependencies[1].postgres: undefined variable ${HOST}: pass --var HOST=..., define it under vars or in the environment, or write ${HOST:-default}',
    ]);
  });

  it('interpolates inside lists and nested mappings, but not keys', () => {
    const { recipe: r } = load(
      'version: 1\nname: svc\nstop: { run: x }\nstart:\n  spawn: ["${NODE:-node}", "s.js"]\n  pidfile: /run/${NAME}.pid\n  env: { "${K}": "${V}" }\n',
      { env: { NAME: 'svc', K: 'KEY', V: 'val' } },
    );
    expect(r.service.kind === 'commands' && r.service.start).toMatchObject({ argv: ['node', 's.js'], pidfile: '/run/svc.pid', env: { '${K}': 'val' } });
  });

  it('keeps the shell its own variables', () => {
    const { recipe: r } = load(recipe('hooks:\n  before_stop:\n    - run: echo "$SAFE_RESTART_RELEASE $${NOT_OURS}"\n'));
    // in the parts that run, a literal ${ is kept marked until the step is bound, so it is never taken for a run-time reference
    const step = r.hooks.beforeStop[0];
    expect(step?.kind === 'step' && bindTemplate(String(step.step.run), RUNTIME)).toBe('echo "$SAFE_RESTART_RELEASE ${NOT_OURS}"');
  });

  it('keeps run-time references for the runner, where the parts that run may use them', () => {
    const { recipe: r } = load(recipe('hooks:\n  before_stop:\n    - run: "echo ${SAFE_RESTART_RELEASE} $${SAFE_RESTART_PHASE} ${SAFE_RESTART_TARGET_RELEASE:-none}"\n'));
    const step = r.hooks.beforeStop[0];
    const run = step?.kind === 'step' ? String(step.step.run) : '';
    expect(bindTemplate(run, RUNTIME)).toBe('echo v2 ${SAFE_RESTART_PHASE} none');
    expect(showTemplate(run)).toBe('echo ${SAFE_RESTART_RELEASE} ${SAFE_RESTART_PHASE} ${SAFE_RESTART_TARGET_RELEASE:-none}');
  });

  it('refuses a run-time value that would become shell code in a string command', () => {
    expect(() => bindTemplate('cat /srv/${SAFE_RESTART_RELEASE}/x', { ...RUNTIME, SAFE_RESTART_RELEASE: 'v1; rm -rf /' }, { shell: true })).toThrow(/contains shell syntax/);
    expect(bindTemplate('cat /srv/${SAFE_RESTART_RELEASE}/x', { ...RUNTIME, SAFE_RESTART_RELEASE: 'v1; rm' })).toBe('cat /srv/v1; rm/x');
  });

  it('reports a malformed reference at its node', () => {
    expect(problems(recipe('description: "cost ${1}"\n'))).toEqual([
      'r.yaml:7:14: description: invalid reference "${1}": expected ${NAME} or ${NAME:-default} (write $${ for a literal ${)',
    ]);
  });

  it('yields strings, so a number field filled from a variable is a schema error', () => {
    expect(problems(recipe('gates:\n  - tcp: { host: a, port: "${P}" }\n'), { env: { P: '80' } })).toEqual([
      'r.yaml:8:27: gates[0].tcp.port: expected a number (got "80")',
    ]);
  });
});

describe('redaction', () => {
  it('redacts URL passwords and secret-named variables', () => {
    const r = new Redactor();
    r.addVariable('DB_PASSWORD', 'hunter22');
    r.addVariable('api_token', 'tok-123');
    r.addVariable('PORT', '8080');
    expect(r.redact('pw=hunter22 tok=tok-123 port=8080')).toBe('pw=*** tok=*** port=8080');
    expect(r.redactUrl('postgres://u:other-pw@h:5432/db')).toBe('postgres://u:***@h:5432/db');
    expect(r.redact('see redis://:p4ss@h:6379/0 and mysql://app@h/db')).toBe('see redis://:***@h:6379/0 and mysql://app@h/db');
  });

  it('redacts the URL-encoded form of a secret too', () => {
    const r = new Redactor();
    r.addVariable('SECRET', 'p@ss/word');
    expect(r.redact('postgres://u:p%40ss%2Fword@h/db and p@ss/word')).toBe('postgres://u:***@h/db and ***');
  });

  const SECRET_RECIPE = `version: 1
name: svc
vars:
  DB_PASSWORD: \${PGPASS}
  LABEL: plain
stop: { run: "echo \${DB_PASSWORD}" }
start: { run: "curl -H 'Authorization: Bearer \${API_TOKEN}' http://x/" }
dependencies:
  - postgres: postgres://orders:\${DB_PASSWORD}@127.0.0.1:5432/orders
  - redis: redis://:literal-secret@127.0.0.1:6379/0
  - name: api
    http:
      url: http://127.0.0.1/
      headers: { Authorization: "Bearer \${OTHER}" }
`;

  it('knows every secret of a loaded recipe, wherever it came from', () => {
    const { recipe, redactor } = load(SECRET_RECIPE, { env: { PGPASS: 'pg-secret-1', API_TOKEN: 'tok-secret-2', OTHER: 'hdr-secret-3' } });
    const dump = redactor.redact(JSON.stringify(recipe));
    for (const secret of ['pg-secret-1', 'tok-secret-2', 'hdr-secret-3', 'literal-secret']) expect(dump).not.toContain(secret);
    expect(dump).toContain('plain');
    expect(recipe.dependencies.map((d) => d.name)).toEqual(['postgres 127.0.0.1:5432/orders', 'redis 127.0.0.1:6379/0', 'api']);
    expect(recipe.dependencies[0]?.target).toBe('127.0.0.1:5432/orders');
  });

  it('never prints a secret in an error', () => {
    const text = SECRET_RECIPE.replace('  LABEL: plain\n', '  LABEL: plain\nconfirm: "${PGPASS}"\n');
    const lines = problems(text, { env: { PGPASS: 'pg-secret-1', API_TOKEN: 'x', OTHER: 'y' } }).join('\n');
    expect(lines).toBe('r.yaml:6:10: confirm: expected true or false (got "***")');
  });

  it('never prints a --var secret in an error', () => {
    const lines = problems(`${BASE}gates:\n  - tcp: "\${MY_KEY}"\n`, { vars: { MY_KEY: 'sekrit-value' } }).join('\n');
    expect(lines).not.toContain('sekrit-value');
    expect(lines).toContain('(got "***")');
  });
});
