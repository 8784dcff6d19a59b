// zod issues → located, readable problems: the offending node's line:col, a dotted path, what is
// wrong, and what was found. Unions report the branch the user most plausibly meant.
import type { z } from 'zod';
import type { Path, PathSegment } from './parse.js';

type Issue = z.core.$ZodIssue;
type AnySchema = z.core.$ZodType;

export interface SchemaProblem {
  path: Path;
  /** Point at the key (unknown keys) rather than the value. */
  at: 'key' | 'value';
  message: string;
}

/** Everything wrong in `issues`, one problem per offending node. */
export function describeIssues(issues: readonly Issue[], root: AnySchema, base: Path = []): SchemaProblem[] {
  return issues.flatMap((issue) => describeIssue(issue, root, base));
}

function describeIssue(issue: Issue, root: AnySchema, base: Path): SchemaProblem[] {
  const path: PathSegment[] = [...base, ...(issue.path as PathSegment[])];
  const got = describeValue(issue.input);
  switch (issue.code) {
    case 'invalid_type': {
      if (issue.input === undefined) return [{ path, at: 'value', message: 'required key is missing' }];
      return [{ path, at: 'value', message: `expected ${describeExpected(issue.expected)}${booleanHint(issue)} (got ${got})` }];
    }
    case 'unrecognized_keys':
      return issue.keys.map((key) => {
        const suggestion = closest(key, knownKeysAt(root, path));
        const hint = suggestion ? `; did you mean "${suggestion}"?` : '';
        return { path: [...path, key], at: 'key' as const, message: `unknown key "${key}"${hint}` };
      });
    case 'invalid_union':
      return describeUnion(issue, root, path, got);
    case 'invalid_value': {
      const options = issue.values.map((v) => JSON.stringify(v));
      const expected = options.length === 1 ? options[0] : `one of ${options.join(', ')}`;
      return [{ path, at: 'value', message: `expected ${expected} (got ${got})` }];
    }
    case 'invalid_key': {
      const inner = issue.issues[0];
      const why = inner ? ownMessage(inner) ?? 'is not allowed' : 'is not allowed';
      return [{ path, at: 'key', message: `key ${why} (got ${JSON.stringify(String(path[path.length - 1]))})` }];
    }
    case 'too_big':
      return [{ path, at: 'value', message: `${sizeMessage(issue.origin, 'most', issue.maximum, issue.inclusive !== false)} (got ${got})` }];
    case 'too_small':
      return [{ path, at: 'value', message: `${sizeMessage(issue.origin, 'least', issue.minimum, issue.inclusive !== false)} (got ${got})` }];
    case 'invalid_format':
      return [{ path, at: 'value', message: `${ownMessage(issue) ?? `must match ${issue.pattern ?? issue.format}`} (got ${got})` }];
    default:
      return [{ path, at: 'value', message: `${issue.message} (got ${got})` }];
  }
}

// Each branch's issues are scored; the branch with the lowest score is what the user meant.
// A type mismatch at the union itself means "not this branch at all".
function describeUnion(issue: Extract<Issue, { code: 'invalid_union' }>, root: AnySchema, path: PathSegment[], got: string): SchemaProblem[] {
  if (issue.input === undefined) return [{ path, at: 'value', message: 'required key is missing' }];
  const branches = issue.errors;
  const rootMismatch = (i: Issue): boolean => i.code === 'invalid_type' && i.path.length === 0;
  const viable = branches.filter((b) => !b.some(rootMismatch));
  if (viable.length === 0) {
    const custom = ownMessage(issue);
    const expected = [...new Set(branches.flatMap((b) => b.filter(rootMismatch).map((i) => describeExpected((i as { expected: string }).expected))))];
    return [{ path, at: 'value', message: `${custom ?? `expected ${expected.join(' or ')}`} (got ${got})` }];
  }
  const mixed = describeMixedKinds(viable, root, path);
  if (mixed) return mixed;
  const score = (b: Issue[]): number =>
    b.reduce((sum, i) => {
      if (i.code === 'unrecognized_keys') return sum + i.keys.length;
      if (i.code === 'invalid_type' && i.input === undefined) return sum + 10;
      return sum + 1;
    }, 0);
  const best = viable.reduce((a, b) => (score(b) < score(a) ? b : a));
  return describeIssues(best, root, path);
}

// A mapping with keys that only one branch knows *and* keys that only another knows (a hook item with
// both `run` and `tcp`): every branch rejects a key another accepts, so no "did you mean" can help.
// The union's description says what the kinds are; the message names the keys that were mixed.
function describeMixedKinds(branches: Issue[][], root: AnySchema, path: PathSegment[]): SchemaProblem[] | null {
  if (branches.length < 2) return null;
  const rejected = branches.map((b) => new Set(b.flatMap((i) => (i.code === 'unrecognized_keys' && i.path.length === 0 ? i.keys : []))));
  const anyRejected = [...new Set(rejected.flatMap((r) => [...r]))];
  // a key no branch accepts is a plain unknown key; one that some branch accepts belongs to that branch's kind
  const unknownEverywhere = anyRejected.filter((k) => rejected.every((r) => r.has(k)));
  const kinds = rejected.map((own) => anyRejected.filter((k) => !own.has(k))).filter((keys) => keys.length > 0);
  if (kinds.length < 2) return null;
  const what = unionDescriptionAt(root, path);
  const lead = what ? `must be ${what.charAt(0).toLowerCase()}${what.slice(1).replace(/\.$/, '')}` : 'mixes keys of different kinds of item';
  const found = kinds.map((keys) => keys.map((k) => JSON.stringify(k)).join(', ')).join(' and ');
  const unknown = unknownEverywhere.map((key) => {
    const suggestion = closest(key, knownKeysAt(root, path));
    return { path: [...path, key], at: 'key' as const, message: `unknown key "${key}"${suggestion ? `; did you mean "${suggestion}"?` : ''}` };
  });
  return [{ path, at: 'value', message: `${lead}: found ${found}` }, ...unknown];
}

/** The description of the union schema at `path`, if it has one. */
function unionDescriptionAt(root: AnySchema, path: Path): string | undefined {
  for (let node of schemasAt(root, path)) {
    while (defOf(node).type === 'optional' || defOf(node).type === 'nullable') node = defOf(node).innerType as AnySchema;
    const description = (node as { description?: string }).description;
    if (defOf(node).type === 'union' && description) return description;
  }
  return undefined;
}

function defOf(schema: AnySchema): Record<string, unknown> & { type: string } {
  return schema._zod.def as unknown as Record<string, unknown> & { type: string };
}

/** The message a schema author wrote, or undefined when zod's generic one would be shown. */
function ownMessage(issue: Issue): string | undefined {
  return /^(Invalid|Too (big|small)|Unrecognized)/.test(issue.message) ? undefined : issue.message;
}

function describeExpected(expected: string): string {
  switch (expected) {
    case 'string':
      return 'a string';
    case 'number':
      return 'a number';
    case 'int':
      return 'a whole number';
    case 'boolean':
      return 'true or false';
    case 'array':
    case 'tuple':
      return 'a list';
    case 'object':
    case 'record':
    case 'map':
      return 'a mapping';
    default:
      return expected;
  }
}

function booleanHint(issue: Extract<Issue, { code: 'invalid_type' }>): string {
  if (issue.expected === 'boolean' && typeof issue.input === 'string' && /^(y|yes|n|no|on|off)$/i.test(issue.input)) {
    return ' (YAML 1.2: only true and false are booleans)';
  }
  return '';
}

function sizeMessage(origin: string, bound: 'most' | 'least', limit: number | bigint, inclusive: boolean): string {
  const n = Number(limit);
  if (origin === 'string') return bound === 'least' && n === 1 ? 'must not be empty' : `must be at ${bound} ${n} characters long`;
  if (origin === 'array' || origin === 'set') return bound === 'least' && n === 1 ? 'must not be an empty list' : `must have at ${bound} ${n} items`;
  if (inclusive) return `must be at ${bound} ${n}`;
  return bound === 'most' ? `must be less than ${n}` : `must be greater than ${n}`;
}

/** "got" text for a value: strings quoted and shortened, lists and mappings named. */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  if (Array.isArray(value)) return value.length === 0 ? '[]' : 'a list';
  if (typeof value === 'object') return Object.keys(value).length === 0 ? '{}' : 'a mapping';
  return String(value);
}

/** Keys the schema allows at `path` (all union branches together). */
export function knownKeysAt(root: AnySchema, path: Path): string[] {
  const keys = new Set<string>();
  for (const s of schemasAt(root, path).flatMap(unwrap)) {
    const def = s._zod.def as unknown as { type: string; shape?: Record<string, unknown> };
    if (def.type === 'object' && def.shape) for (const k of Object.keys(def.shape)) keys.add(k);
  }
  return [...keys];
}

/** The schemas that describe the value at `path` (every union branch that could apply), not unwrapped. */
function schemasAt(root: AnySchema, path: Path): AnySchema[] {
  let schemas: AnySchema[] = [root];
  for (const seg of path) {
    schemas = schemas.flatMap(unwrap).flatMap((s) => {
      const def = s._zod.def as unknown as Record<string, unknown> & { type: string };
      if (def.type === 'object' && typeof seg === 'string') {
        const child = (def.shape as Record<string, AnySchema>)[seg];
        return child ? [child] : [];
      }
      if (def.type === 'array' && typeof seg === 'number') return [def.element as AnySchema];
      if (def.type === 'record') return [def.valueType as AnySchema];
      return [];
    });
  }
  return schemas;
}

function unwrap(schema: AnySchema): AnySchema[] {
  const def = schema._zod.def as unknown as Record<string, unknown> & { type: string };
  if (def.type === 'optional' || def.type === 'nullable' || def.type === 'default' || def.type === 'readonly') {
    return unwrap(def.innerType as AnySchema);
  }
  if (def.type === 'pipe') return unwrap(def.in as AnySchema);
  if (def.type === 'union') return (def.options as AnySchema[]).flatMap(unwrap);
  return [schema];
}

/** The known key within edit distance 2 of `word`, if exactly one is closest. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of candidates) {
    const d = levenshtein(word.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

export function levenshtein(a: string, b: string): number {
  if (a === b) return 0;
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row[j] = Math.min((prev[j] as number) + 1, (row[j - 1] as number) + 1, (prev[j - 1] as number) + cost);
    }
    prev = row;
  }
  return prev[b.length] as number;
}
