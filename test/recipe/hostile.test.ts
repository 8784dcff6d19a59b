// Hostile and surprising input is refused cleanly: a located problem, exit 65, never a crash or a hang.
import { describe, expect, it } from 'vitest';
import { RecipeError } from '../../src/errors.js';
import { loadRecipeText } from '../../src/recipe/load.js';
import { BASE, load, problems } from './helpers.js';

const deep = (n: number): string => '['.repeat(n) + ']'.repeat(n);

describe('hostile input', () => {
  it('refuses text over 1 MiB', () => {
    expect(problems(`${BASE}description: "${'x'.repeat(1024 * 1024)}"\n`)).toEqual([
      expect.stringMatching(/^r\.yaml:1:1: the file is \d+ bytes; a recipe may be at most 1048576 bytes \(1 MiB\)$/),
    ]);
  });

  it('refuses more than one YAML document, at the second one', () => {
    expect(problems(`${BASE}---\nversion: 1\n`)).toEqual(['r.yaml:7:1: found 2 YAML documents; a recipe is exactly one document (remove the "---" separators)']);
  });

  it('refuses an alias bomb quickly', () => {
    const bomb = `${BASE}x0: &a [x,x,x,x,x,x,x,x,x]
x1: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
x2: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
x3: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
x4: [*d,*d,*d,*d,*d,*d,*d,*d,*d]
`;
    const started = Date.now();
    expect(problems(bomb)).toEqual(['r.yaml:1:1: too many aliases (*name) expand the document (limit 16); anchors and aliases are for small reuse only']);
    // Generous bound: expansion would take minutes and gigabytes.
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('allows a few aliases for small reuse', () => {
    const { recipe } = load(`version: 1\nname: svc\nstop: { run: x, env: &env { A: "1" } }\nstart: { run: y, env: *env }\n`);
    expect(recipe.service.kind === 'commands' && recipe.service.start).toMatchObject({ step: { env: { A: '1' } } });
  });

  it('refuses an alias without an anchor', () => {
    expect(problems(`${BASE}description: *nope\n`)).toEqual(['r.yaml:7:14: description: alias *nope refers to no anchor defined before it']);
  });

  it('refuses merge keys (<<)', () => {
    expect(problems('version: 1\nname: svc\nbase: &b { run: x }\nstop:\n  <<: *b\nstart: { run: y }\n')).toContain(
      'r.yaml:5:3: stop: merge keys (<<) are not supported; write the keys out, or use a YAML anchor for a whole value',
    );
  });

  it('refuses duplicate keys at the second occurrence', () => {
    expect(problems(`${BASE}name: other\n`)).toEqual(['r.yaml:7:1: duplicate key "name"']);
    expect(problems('version: 1\nname: svc\nstop:\n  run: a\n  run: b\nstart: { run: y }\n')).toEqual(['r.yaml:5:3: duplicate key "run"']);
  });

  it('refuses nesting deeper than 64 levels', () => {
    expect(() => load(`${BASE}description: ${deep(60)}\n`)).toThrow(/description: expected a string/);
    expect(problems(`${BASE}description: ${deep(70)}\n`)).toEqual(['r.yaml:7:77: the document is nested too deeply (more than 64 levels)']);
  });

  it('survives absurd nesting without a stack overflow', () => {
    const lines = problems(`${BASE}description: ${deep(200_000)}\n`);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^r\.yaml:7:\d+: the document is nested too deeply \(more than 64 levels\)$/);
  });

  it.each([
    ['a list', '- version: 1\n'],
    ['a single value', 'hello\n'],
  ])('refuses a root that is %s', (got, text) => {
    expect(problems(text)).toEqual([`r.yaml:1:1: the recipe must be a mapping of keys such as version, name, stop and start (got ${got})`]);
  });

  it.each([
    ['empty', ''],
    ['only a comment', '# nothing here\n'],
  ])('refuses an %s file', (_label, text) => {
    expect(problems(text)).toEqual(['r.yaml:1:1: the recipe is empty; expected a mapping with at least version, name, stop and start']);
  });

  it('refuses __proto__ and constructor keys without touching prototypes', () => {
    expect(problems(`${BASE}__proto__: { polluted: true }\n`)).toEqual(['r.yaml:7:1: the key "__proto__" is not allowed (it could alter object prototypes)']);
    expect(problems(`${BASE}stop2:\n  env: { __proto__: { polluted: "yes" } }\n`)).toContain(
      'r.yaml:8:10: stop2.env: the key "__proto__" is not allowed (it could alter object prototypes)',
    );
    expect(problems(`${BASE}gates:\n  - tcp: a:1\n    constructor: x\n`)).toEqual([
      'r.yaml:9:5: gates[0]: the key "constructor" is not allowed (it could alter object prototypes)',
    ]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it.each([
    ['!!js/function', '!!js/function "function () {}"'],
    ['!custom', '!custom hello'],
    ['!!binary', '!!binary aGVsbG8='],
  ])('refuses the tag %s', (tag, value) => {
    expect(problems(`${BASE}description: ${value}\n`)).toEqual([`r.yaml:7:14: unsupported tag ${tag}; recipes use plain YAML values only`]);
  });

  it('refuses a NUL byte, at its position', () => {
    expect(problems(`${BASE}description: "a\0b"\n`)).toEqual(['r.yaml:7:16: the file contains a NUL byte; a recipe is UTF-8 text']);
  });

  it('refuses tabs as indentation and other YAML syntax errors', () => {
    expect(problems('version: 1\nname: svc\nstop:\n\trun: x\n')[0]).toBe('r.yaml:4:1: invalid YAML: Tabs are not allowed as indentation');
    expect(problems(`${BASE}gates: [1, 2\n`)[0]).toMatch(/^r\.yaml:\d+:\d+: invalid YAML: /);
  });

  it('refuses keys that are not strings', () => {
    expect(problems(`${BASE}? [a, b]\n: c\n`)).toEqual(['r.yaml:7:3: keys must be plain strings']);
  });

  it('is not fooled by a thrown error turning into a stack trace', () => {
    const error = (() => {
      try {
        loadRecipeText('version: [\n', 'r.yaml', { env: {} });
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(RecipeError);
    expect((error as RecipeError).message).not.toMatch(/\n\s+at /);
  });
});

describe('YAML 1.1 surprises follow the YAML 1.2 core schema', () => {
  it('refuses integers written with a leading zero', () => {
    expect(problems(`${BASE}gates:\n  - tcp: { host: a, port: 08080 }\n`)).toEqual([
      'r.yaml:8:27: gates[0].tcp.port: the number 08080 has a leading zero, which YAML versions read differently (1.1 reads 010 as octal 8); write 8080, or quote it if you mean text (got 08080)',
    ]);
    expect(problems(`${BASE}gates:\n  - tcp: "a:08080"\n`)).toEqual(['r.yaml:8:10: gates[0].tcp: port must not have a leading zero (got "a:08080")']);
  });

  it('reads 0o17 and 0x1F as the numbers they are (explicit, unambiguous)', () => {
    const { recipe } = load(`${BASE}gates:\n  - tcp: { host: a, port: 0x1F90 }\n    interval: 0o17\n`);
    expect(recipe.gates[0]).toMatchObject({ probe: { port: 8080 }, intervalMs: 15 });
  });

  it.each(['on', 'off', 'yes', 'no', 'y', 'n'])('refuses %s where a boolean is expected', (word) => {
    expect(problems(`${BASE}confirm: ${word}\n`)).toEqual([
      `r.yaml:7:10: confirm: expected true or false (YAML 1.2: only true and false are booleans) (got "${word}")`,
    ]);
  });

  it('keeps on/no/yes as strings where a string is expected', () => {
    const { recipe } = load(`${BASE}description: no\nvars: { A: on, B: yes }\n`);
    expect(recipe.description).toBe('no');
    expect(recipe.vars).toEqual({ A: 'on', B: 'yes' });
  });
});
