// The tools under comparison, each as the argv a user would run. Node tools are started as `node SCRIPT`
// (what an npm bin shim does, minus the shim); shell loops are exactly the runbook lines from the issue.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NODE, SR, WAIT_ON, WAIT_PORT } from './util.mjs';

/** A recipe with one dependency and every setting left at its default (stop/start are required but unused). */
export function oneDependencyRecipe(dir, name, dependency) {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    ['version: 1', `name: ${name}`, 'dependencies:', `  - name: dep`, `    ${dependency}`, 'stop:', '  run: "true"', 'start:', '  run: "true"', ''].join('\n'),
  );
  return file;
}

/**
 * Detection tools. `target` is { kind: 'tcp'|'http', port, url, recipe } where recipe is the
 * one-dependency recipe for safe-restart. Returns [cmd, args] or null when the tool does not apply.
 */
export const DETECTION_TOOLS = [
  { id: 'safe-restart', label: 'safe-restart check (defaults)', argv: (t) => [NODE, [SR, 'check', t.recipe]] },
  {
    id: 'wait-on',
    label: 'wait-on (defaults)',
    argv: (t) => [NODE, [WAIT_ON, t.kind === 'tcp' ? `tcp:127.0.0.1:${t.port}` : t.url]],
  },
  {
    id: 'wait-on-i50',
    label: 'wait-on -i 50',
    argv: (t) => [NODE, [WAIT_ON, '-i', '50', t.kind === 'tcp' ? `tcp:127.0.0.1:${t.port}` : t.url]],
  },
  {
    id: 'wait-port',
    label: 'wait-port',
    argv: (t) => [NODE, [WAIT_PORT, t.kind === 'tcp' ? `127.0.0.1:${t.port}` : t.url]],
  },
  {
    id: 'nc-loop',
    label: 'until nc -z; sleep 2',
    argv: (t) => ['bash', ['-c', `until nc -z 127.0.0.1 ${t.port}; do sleep 2; done`]],
  },
  {
    id: 'curl-loop',
    label: 'until curl -fsS; sleep 1',
    argv: (t) => (t.kind === 'http' ? ['bash', ['-c', `until curl -fsS -o /dev/null ${t.url}; do sleep 1; done`]] : null),
  },
];
