// Recipe fuzzing: arbitrary YAML-ish text, mutations of the bundled recipes and of the hostile corpus
// (test/recipe/hostile.test.ts keeps the exact messages; here they are only seeds to mutate) → the loader
// returns a typed recipe or throws a RecipeError with located problems, never anything else, within 1 s
// per input; and the real CLI never prints a stack trace for a fuzzed file.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RecipeError } from '../../src/errors.js';
import { loadRecipeText } from '../../src/recipe/load.js';
import { CLI, ROOT } from '../support/sandbox.js';

export const FUZZ_RUNS = { text: 1500, mutations: 2000, cli: 8 };
const PER_INPUT_MS = 1_000;
const SEED = Number(process.env.SR_FUZZ_SEED ?? 20261126);

const RECIPES = readdirSync(join(ROOT, 'recipes'))
  .filter((f) => f.endsWith('.yaml'))
  .map((f) => readFileSync(join(ROOT, 'recipes', f), 'utf8'));

const BASE = 'version: 1\nname: svc\nstop:\n  run: systemctl stop svc\nstart:\n  run: systemctl start svc\n';
// the hostile corpus, as seeds: each is refused cleanly as written; mutated, it must still be
const HOSTILE = [
  `${BASE}x0: &a [x,x,x,x,x,x,x,x,x]\nx1: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nx2: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nx3: [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n`,
  `${BASE}---\nversion: 1\n`,
  `${BASE}description: ${'['.repeat(70)}${']'.repeat(70)}\n`,
  `${BASE}__proto__: { polluted: true }\n`,
  `${BASE}stop2:\n  env: { constructor: { polluted: "yes" } }\n`,
  `${BASE}description: !!js/function "function () {}"\n`,
  `${BASE}description: "a\0b"\n`,
  'version: 1\nname: svc\nbase: &b { run: x }\nstop:\n  <<: *b\nstart: { run: y }\n',
  `${BASE}name: other\n`,
  `${BASE}? [a, b]\n: c\n`,
  `${BASE}gates:\n  - tcp: { host: a, port: 08080 }\n`,
  `${BASE}confirm: yes\n`,
  `${BASE}description: \${UNDEFINED_VAR}\nvars: { A: "\${A}" }\n`,
];

/** Load, timed; anything but a result or a RecipeError fails the property. */
function loadsCleanly(text: string): void {
  const started = performance.now();
  try {
    const { recipe } = loadRecipeText(text, 'fuzz.yaml', { env: {} });
    expect(typeof recipe.name).toBe('string');
    expect(Array.isArray(recipe.gates)).toBe(true);
  } catch (error) {
    if (!(error instanceof RecipeError)) throw new Error(`not a RecipeError: ${(error as Error)?.stack ?? String(error)}\ninput: ${JSON.stringify(text).slice(0, 400)}`);
    expect(error.problems.length).toBeGreaterThan(0);
    for (const p of error.problems) {
      expect(p.line).toBeGreaterThanOrEqual(1);
      expect(p.col).toBeGreaterThanOrEqual(1);
    }
    expect(error.message).not.toMatch(/\n\s+at /);
  }
  const took = performance.now() - started;
  if (took > PER_INPUT_MS) throw new Error(`took ${Math.round(took)}ms (limit ${PER_INPUT_MS}ms): ${JSON.stringify(text).slice(0, 200)}`);
}

const TOKENS = [
  ':', ': ', '- ', '  ', '\n', '\n  ', '\t', '"', "'", '[', ']', '{', '}', ',', '#', '&a ', '*a', '!', '!!str ', '|', '>', '?', '---', '...',
  '<<: ', '${', '}', '$${', '${X:-', 'version', 'name', 'stop', 'start', 'gates', 'http', 'tcp', 'run', 'spawn', 'timeout', '30s', '1e9', '-1',
  '0x', '08', 'null', '~', 'true', 'yes', '__proto__', 'constructor', '\0', '\u2028', '\uFEFF', '🦄', 'é', '\r\n',
];
const yamlish = fc.array(fc.oneof(fc.constantFrom(...TOKENS), fc.string({ maxLength: 8 })), { maxLength: 120 }).map((parts) => parts.join(''));

type Mutation = (text: string) => string;
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.tuple(fc.nat(), fc.nat({ max: 40 })).map(([at, n]): Mutation => (t) => t.slice(0, at % (t.length + 1)) + t.slice((at % (t.length + 1)) + n)),
  fc.tuple(fc.nat(), fc.oneof(fc.constantFrom(...TOKENS), fc.string({ maxLength: 12 }))).map(([at, s]): Mutation => (t) => t.slice(0, at % (t.length + 1)) + s + t.slice(at % (t.length + 1))),
  fc.tuple(fc.nat(), fc.nat()).map(([a, b]): Mutation => (t) => {
    const lines = t.split('\n');
    const i = a % lines.length;
    const j = b % lines.length;
    [lines[i], lines[j]] = [lines[j] as string, lines[i] as string];
    return lines.join('\n');
  }),
  fc.nat().map((a): Mutation => (t) => {
    const lines = t.split('\n');
    const i = a % lines.length;
    lines.splice(i, 0, lines[i] as string);
    return lines.join('\n');
  }),
  fc.tuple(fc.nat(), fc.integer({ min: -4, max: 4 })).map(([a, d]): Mutation => (t) => {
    const lines = t.split('\n');
    const i = a % lines.length;
    const line = lines[i] as string;
    lines[i] = d >= 0 ? ' '.repeat(d) + line : line.replace(new RegExp(`^ {0,${-d}}`), '');
    return lines.join('\n');
  }),
  fc.tuple(fc.nat(), fc.constantFrom('', '0', '-1', '"x"', '[]', '{}', 'null', '99999999999999999999', '1.5.5s', '${NOPE}', '*x', '&y z')).map(([a, v]): Mutation => (t) => {
    const lines = t.split('\n');
    const i = a % lines.length;
    lines[i] = (lines[i] as string).replace(/:\s.*$/, `: ${v}`);
    return lines.join('\n');
  }),
);
const mutated = fc.tuple(fc.constantFrom(...RECIPES, ...HOSTILE), fc.array(mutation, { minLength: 1, maxLength: 6 })).map(([text, ms]) => ms.reduce((t, m) => m(t), text));

describe('recipe fuzzing', () => {
  it('every bundled recipe loads as written (the mutation seeds are valid)', () => {
    for (const text of RECIPES) expect(() => loadRecipeText(text, 'r.yaml', { env: {} })).not.toThrow();
  });

  it(`arbitrary YAML-ish text: a recipe or a RecipeError, within ${PER_INPUT_MS}ms each (${FUZZ_RUNS.text} inputs)`, () => {
    fc.assert(fc.property(yamlish, loadsCleanly), { numRuns: FUZZ_RUNS.text, seed: SEED });
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 300 }), loadsCleanly), { numRuns: 200, seed: SEED });
  });

  it(`mutations of the bundled recipes and the hostile corpus: the same (${FUZZ_RUNS.mutations} inputs)`, () => {
    fc.assert(fc.property(mutated, loadsCleanly), { numRuns: FUZZ_RUNS.mutations, seed: SEED });
  });

  it(`the real CLI never prints a stack trace for a fuzzed file (${FUZZ_RUNS.cli} files)`, () => {
    const dir = mkdtempSync(join(tmpdir(), 'sr-fuzz-'));
    try {
      const inputs = fc.sample(fc.oneof(mutated, yamlish), { numRuns: FUZZ_RUNS.cli, seed: SEED });
      inputs.forEach((text, i) => writeFileSync(join(dir, `f${i}.yaml`), text));
      for (let i = 0; i < inputs.length; i++) {
        for (const args of [['validate', join(dir, `f${i}.yaml`)], ['plan', join(dir, `f${i}.yaml`)]]) {
          const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 20_000, env: { PATH: process.env.PATH ?? '' } });
          expect([0, 65], `${args.join(' ')}: ${r.stderr}`).toContain(r.status);
          expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
