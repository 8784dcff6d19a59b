// Through the real CLI: a gate that passes and waits out stable_for says so in the plain (non-terminal) output.
import { describe, expect, it } from 'vitest';
import { sandboxPerTest } from '../support/sandbox.js';

const setup = sandboxPerTest();

describe('plain output of a gate waiting out stable_for', () => {
  it('reads "passing, stable for …s of 2.5s", never "still waiting"', async () => {
    const s = await setup();
    await s.startCurrent();
    const gates = `  - name: healthz\n    http: http://127.0.0.1:${s.port}/healthz\n    stable_for: 2.5s\n    timeout: 10s`;
    const r = await s.cli(['run', s.recipe({ gates }), '--release', 'v2'], { json: false });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/… healthz: passing, stable for \d\.\ds of 2\.5s/);
    expect(r.stderr).not.toMatch(/healthz: still waiting/);
    await s.stopService();
  });
});
