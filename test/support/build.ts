// vitest global setup: the CLI tests run the built CLI (bin/ → dist/bundle/), so build it once before any test.
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';

export default function setup(): void {
  if (process.env.SAFE_RESTART_SKIP_BUILD === '1') return;
  const root = resolve(import.meta.dirname, '..', '..');
  try {
    // esbuild alone (about a second): `npm test` type-checks separately, and the tests never load dist/ of tsc
    execFileSync('npm', ['run', '--silent', 'build:cli'], { cwd: root, stdio: 'inherit' });
  } catch {
    throw new Error('safe-restart: building the CLI bundle failed (see above)');
  }
}
