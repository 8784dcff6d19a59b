// Step 1 of loading: recipe text → plain data plus a locator from every path back to its line:col.
// Hostile input is refused here, before anything interprets a value.
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseAllDocuments, type Document, type Node as YamlNode } from 'yaml';
import type { RecipeProblem } from '../errors.js';

export const MAX_BYTES = 1024 * 1024;
export const MAX_DEPTH = 64;
// Low on purpose: a recipe needs few anchors, and a "billion laughs" needs many.
export const MAX_ALIAS_COUNT = 16;
const MAX_PROBLEMS = 50;

export type PathSegment = string | number;
export type Path = readonly PathSegment[];

export interface Position {
  line: number;
  col: number;
}

export interface Locator {
  /** Where the value at `path` starts (or, with `key`, its key); falls back to the nearest ancestor. */
  locate(path: Path, prefer?: 'key' | 'value'): Position;
  /** True when the written document has a node at `path`. */
  has(path: Path): boolean;
}

export interface ParsedRecipeText {
  data: unknown;
  locator: Locator;
  problems: RecipeProblem[];
}

const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** "gates[0].http.status"; keys that are not plain words are quoted: headers["X-Token"]. */
export function formatPath(path: Path): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(seg)) out += out ? `.${seg}` : seg;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

function pathKey(path: Path): string {
  return JSON.stringify(path);
}

class PositionIndex implements Locator {
  readonly values = new Map<string, number>();
  readonly keys = new Map<string, number>();
  constructor(private readonly lines: LineCounter) {}

  toPosition(offset: number): Position {
    const pos = this.lines.linePos(offset);
    return pos.line === 0 ? { line: 1, col: offset + 1 } : pos;
  }

  has(path: Path): boolean {
    return this.values.has(pathKey(path));
  }

  locate(path: Path, prefer: 'key' | 'value' = 'value'): Position {
    for (let n = path.length; n >= 0; n--) {
      const key = pathKey(path.slice(0, n));
      const offset = (prefer === 'key' && n === path.length ? this.keys.get(key) : undefined) ?? this.values.get(key);
      if (offset !== undefined) return this.toPosition(offset);
    }
    return { line: 1, col: 1 };
  }
}

/** Parse recipe text. Never throws: every problem comes back located. */
export function parseRecipeText(text: string, file: string): ParsedRecipeText {
  const lines = new LineCounter();
  const index = new PositionIndex(lines);
  const problems: RecipeProblem[] = [];
  const at = (offset: number, message: string, path = ''): void => {
    const { line, col } = index.toPosition(offset);
    problems.push({ file, line, col, path, message });
  };
  const result = (data: unknown = undefined): ParsedRecipeText => ({ data, locator: index, problems: capProblems(problems, file) });

  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > MAX_BYTES) {
    problems.push({ file, line: 1, col: 1, path: '', message: `the file is ${bytes} bytes; a recipe may be at most ${MAX_BYTES} bytes (1 MiB)` });
    return result();
  }
  const nul = text.indexOf('\0');
  if (nul !== -1) {
    lines.addNewLine(0);
    for (let i = text.indexOf('\n'); i !== -1 && i < nul; i = text.indexOf('\n', i + 1)) lines.addNewLine(i + 1);
    at(nul, 'the file contains a NUL byte; a recipe is UTF-8 text');
    return result();
  }

  const docs = parseAllDocuments(text, {
    lineCounter: lines,
    prettyErrors: false,
    logLevel: 'silent',
    version: '1.2',
    schema: 'core',
    merge: false,
    uniqueKeys: true,
    stringKeys: true,
    strict: true,
    resolveKnownTags: false,
  });
  if (!Array.isArray(docs) || docs.length === 0) {
    at(0, 'the recipe is empty; expected a mapping with at least version, name, stop and start');
    return result();
  }
  if (docs.length > 1) {
    const second = docs[1] as Document;
    at(second.range?.[0] ?? 0, `found ${docs.length} YAML documents; a recipe is exactly one document (remove the "---" separators)`);
  }
  const doc = docs[0] as Document.Parsed;
  let deepReported = false;
  for (const e of [...doc.errors, ...doc.warnings]) {
    if (e.code === 'RESOURCE_EXHAUSTION') {
      if (!deepReported) at(e.pos[0], `the document is nested too deeply (more than ${MAX_DEPTH} levels)`);
      deepReported = true;
      continue;
    }
    at(e.pos[0], describeYamlProblem(e.code, e.message, text, e.pos[0]));
  }
  if (problems.length > 0) return result();

  if (!doc.contents || !isMap(doc.contents)) {
    const got = !doc.contents || (isScalar(doc.contents) && doc.contents.value === null) ? 'nothing' : isSeq(doc.contents) ? 'a list' : 'a single value';
    at(doc.contents?.range?.[0] ?? 0, `the recipe must be a mapping of keys such as version, name, stop and start (got ${got})`);
    return result();
  }

  // The library's own alias accounting catches exponential expansion before we walk anything.
  try {
    doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (error) {
    const message = (error as Error).message;
    if (/resource exhaustion/i.test(message)) {
      at(0, `too many aliases (*name) expand the document (limit ${MAX_ALIAS_COUNT}); anchors and aliases are for small reuse only`);
      return result();
    }
  }

  let aliasesExpanded = 0;
  const walk = (node: YamlNode | null | undefined, path: PathSegment[], depth: number, offset: number): unknown => {
    if (node === null || node === undefined) {
      index.values.set(pathKey(path), offset);
      return null;
    }
    const start = node.range?.[0] ?? offset;
    index.values.set(pathKey(path), start);
    if (depth > MAX_DEPTH) {
      if (!deepReported) at(start, `the document is nested too deeply (more than ${MAX_DEPTH} levels)`);
      deepReported = true;
      return null;
    }
    if (isAlias(node)) {
      aliasesExpanded += 1;
      if (aliasesExpanded > MAX_ALIAS_COUNT) {
        if (aliasesExpanded === MAX_ALIAS_COUNT + 1) at(start, `too many aliases (more than ${MAX_ALIAS_COUNT})`, formatPath(path));
        return null;
      }
      const target = node.resolve(doc);
      if (!target) {
        at(start, `alias *${node.source} refers to no anchor defined before it`, formatPath(path));
        return null;
      }
      const value = walk(target, path, depth, start);
      index.values.set(pathKey(path), start);
      return value;
    }
    if (isScalar(node)) {
      if (typeof node.value === 'number' && node.type === 'PLAIN' && node.range) {
        const source = text.slice(node.range[0], node.range[1]);
        if (/^[-+]?0[0-9]/.test(source)) {
          at(
            start,
            `the number ${source} has a leading zero, which YAML versions read differently (1.1 reads 010 as octal 8); write ${String(node.value)}, or quote it if you mean text (got ${source})`,
            formatPath(path),
          );
        }
      }
      if (node.value !== null && !['string', 'number', 'boolean'].includes(typeof node.value)) {
        at(start, `unsupported value (got ${typeof node.value})`, formatPath(path));
        return null;
      }
      return node.value;
    }
    if (isSeq(node)) {
      return node.items.map((item, i) => walk(item as YamlNode | null, [...path, i], depth + 1, start));
    }
    if (isMap(node)) {
      const out: Record<string, unknown> = {};
      for (const pair of node.items) {
        const keyNode = pair.key as YamlNode | null;
        const keyStart = keyNode?.range?.[0] ?? start;
        const key = isScalar(keyNode) ? String(keyNode.value ?? '') : '';
        const childPath = [...path, key];
        index.keys.set(pathKey(childPath), keyStart);
        if (FORBIDDEN_KEYS.has(key)) {
          at(keyStart, `the key "${key}" is not allowed (it could alter object prototypes)`, formatPath(path));
          continue;
        }
        if (key === '<<') {
          at(keyStart, 'merge keys (<<) are not supported; write the keys out, or use a YAML anchor for a whole value', formatPath(path));
          continue;
        }
        const valueStart = (pair.value as YamlNode | null)?.range?.[0] ?? keyNode?.range?.[1] ?? keyStart;
        out[key] = walk(pair.value as YamlNode | null, childPath, depth + 1, valueStart);
      }
      return out;
    }
    at(start, 'unsupported YAML node', formatPath(path));
    return null;
  };
  const data = walk(doc.contents, [], 1, 0);
  return result(problems.length > 0 ? undefined : data);
}

function describeYamlProblem(code: string, message: string, text: string, offset: number): string {
  const here = text.slice(offset, offset + 80).split(/[\s,\]}]/)[0] ?? '';
  switch (code) {
    case 'DUPLICATE_KEY': {
      const key = /^["']?([^"':]*)/.exec(here)?.[1];
      return key ? `duplicate key "${key}"` : 'duplicate key';
    }
    case 'TAG_RESOLVE_FAILED':
      return `unsupported tag ${here || message.replace(/^Unresolved tag: /, '')}; recipes use plain YAML values only`;
    case 'NON_STRING_KEY':
      return 'keys must be plain strings';
    case 'MULTIPLE_DOCS':
      return 'a recipe is exactly one YAML document';
    default:
      return `invalid YAML: ${message}`;
  }
}

function capProblems(problems: RecipeProblem[], file: string): RecipeProblem[] {
  if (problems.length <= MAX_PROBLEMS) return problems;
  const last = problems[MAX_PROBLEMS - 1] as RecipeProblem;
  return [
    ...problems.slice(0, MAX_PROBLEMS - 1),
    { file, line: last.line, col: last.col, path: '', message: `${problems.length - MAX_PROBLEMS + 1} more problems not shown` },
  ];
}
