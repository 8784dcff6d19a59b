// vitest global setup: the CLI tests run the built CLI (bin/ → dist/bundle/), so build it once before any test.
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';

export default function setup(): void {
  if (process.env.SAFE_RESTART_SKIP_BUILD === '1') return;
  const root = resolve(import.meta.dirname, '..', '..');
  try {
    execFileSync('npm', ['run', '--silent', 'build'], { cwd: root, stdio: 'inherit' });
  } catch {
    // tsc still emits on type errors; `npm test` type-checks separately and fails there
    console.warn('safe-restart: the build reported type errors (see above); testing what was emitted');
  }
}
