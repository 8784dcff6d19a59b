// The package's own folder, found from this module's location: the same answer whether the code
// runs from dist/ (tsc) or dist/bundle/ (the bundled CLI).
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | null = null;

export function packageRoot(): string {
  if (cached) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'safe-restart') return (cached = dir);
    dir = dirname(dir);
  }
  throw new Error('cannot find the safe-restart package.json above this module');
}
