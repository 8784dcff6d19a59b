// The release switch is atomic: a reader never sees a moment without the link.
import { describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { switchSymlink } from '../../src/runner/release.js';

describe('symlink switch', () => {
  it('never leaves the link missing while another process reads it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sr-link-'));
    try {
      for (const id of ['a', 'b']) mkdirSync(join(dir, 'releases', id), { recursive: true });
      const link = join(dir, 'current');
      symlinkSync(join(dir, 'releases', 'a'), link);
      const spec = { kind: 'symlink' as const, symlink: link, releasesDir: join(dir, 'releases') };
      // a separate process reads the link in a tight, bounded loop and counts misses
      const reader = spawn(process.execPath, [
        '-e',
        `const fs=require('fs');let reads=0,misses=0;const end=Date.now()+1500;while(Date.now()<end){try{fs.readlinkSync(${JSON.stringify(link)});reads++}catch{misses++}}console.log(JSON.stringify({reads,misses}))`,
      ]);
      let out = '';
      reader.stdout.on('data', (c) => (out += c));
      const done = new Promise<void>((r) => reader.on('close', () => r()));
      let switches = 0;
      const end = Date.now() + 1200;
      while (Date.now() < end && switches < 5000) {
        await switchSymlink(spec, switches % 2 === 0 ? 'b' : 'a', `t${switches}`);
        switches++;
      }
      await done;
      const { reads, misses } = JSON.parse(out) as { reads: number; misses: number };
      expect(switches).toBeGreaterThan(10);
      expect(reads).toBeGreaterThan(0);
      expect(misses).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
