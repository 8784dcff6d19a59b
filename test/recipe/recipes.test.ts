// Every shipped recipe is valid for the loader AND for the JSON Schema editors use; the schema never drifts.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { loadRecipeFile } from '../../src/recipe/load.js';
import { buildJsonSchema } from '../../src/recipe/schema.js';

const ROOT = join(import.meta.dirname, '..', '..');
const RECIPES = readdirSync(join(ROOT, 'recipes')).filter((f) => f.endsWith('.yaml'));
const COMMITTED = readFileSync(join(ROOT, 'restart-recipe.schema.json'), 'utf8');
// Variables a recipe requires from its caller (recipes/demo.yaml is written for `safe-restart demo`).
const ENV = { DEMO_DIR: '/tmp/safe-restart-demo' };

describe('the committed JSON Schema', () => {
  it('is exactly what the zod schema generates (run `npm run schema:write` after changing schema.ts)', () => {
    expect(COMMITTED).toBe(`${JSON.stringify(buildJsonSchema(), null, 2)}\n`);
  });

  it('describes every property, so an editor has something to show on hover', () => {
    const undescribed: string[] = [];
    const walk = (node: unknown, at: string): void => {
      if (typeof node !== 'object' || node === null) return;
      const properties = (node as { properties?: Record<string, { description?: unknown }> }).properties;
      for (const [key, property] of Object.entries(properties ?? {})) {
        if (typeof property.description !== 'string' || property.description.trim() === '') undescribed.push(`${at}/properties/${key}`);
      }
      for (const [key, child] of Object.entries(node)) walk(child, `${at}/${key}`);
    };
    const schema = JSON.parse(COMMITTED) as Record<string, unknown>;
    expect(schema.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
    walk(schema, '#');
    expect(undescribed).toEqual([]);
  });

  it('compiles under strict ajv (draft 2020-12)', () => {
    const ajv = new Ajv2020({ strict: true, allErrors: true });
    expect(() => ajv.compile(JSON.parse(COMMITTED))).not.toThrow();
  });

  it('rejects what the loader rejects at the schema level', () => {
    const validate = new Ajv2020({ allErrors: true }).compile(JSON.parse(COMMITTED));
    expect(validate({ version: 1, name: 'x', stop: { run: 'a' }, start: { run: 'b' } })).toBe(true);
    expect(validate({ version: 1, name: 'x', service: { systemd: 'web' } })).toBe(true);
    expect(validate({ name: 'x', stop: { run: 'a' }, start: { run: 'b' } })).toBe(false);
    expect(validate({ version: 1, name: 'x', service: { systemd: 'web', stop: 'x' } })).toBe(false);
    expect(validate({ version: 1, name: 'x', stop: { run: 'a' }, start: { run: 'b' }, gates: [{ tcp: 'a:1', stabel_for: '1s' }] })).toBe(false);
    expect(validate({ version: 1, name: 'x', stop: { run: 'a' }, start: { run: 'b' }, defaults: { timeout: '30 s' } })).toBe(false);
  });
});

describe.each(RECIPES)('recipes/%s', (file) => {
  const path = join(ROOT, 'recipes', file);
  const text = readFileSync(path, 'utf8');

  it('starts with the yaml-language-server schema line', () => {
    expect(text.split('\n')[0]).toBe('# yaml-language-server: $schema=../restart-recipe.schema.json');
  });

  it('loads with the zod loader', async () => {
    const { recipe, warnings } = await loadRecipeFile(path, { env: ENV });
    expect(recipe.name).toMatch(/^[a-z0-9]/);
    expect(warnings).toEqual([]);
  });

  it('validates against the JSON Schema with ajv', () => {
    const validate = new Ajv2020({ strict: true, allErrors: true }).compile(JSON.parse(COMMITTED));
    const ok = validate(parse(text));
    expect(validate.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
  });
});

it('ships the four example recipes the docs promise', () => {
  expect(RECIPES).toEqual(expect.arrayContaining(['order-service.yaml', 'supervisord-worker.yaml', 'spawn-process.yaml', 'compose-service.yaml']));
});
