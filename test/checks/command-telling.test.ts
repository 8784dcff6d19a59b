// A failed command check names the line that says why, in the message a report shows (not just in its output).
import { describe, expect, it } from 'vitest';
import { attempt } from '../../src/checks/command.js';
import type { CommandProbe } from '../../src/recipe/types.js';
import type { AttemptResult } from '../../src/checks/types.js';

function attemptOnce(command: CommandProbe['command'], timeoutMs = 10_000): Promise<AttemptResult> {
  return attempt({ type: 'command', command }, { signal: AbortSignal.timeout(timeoutMs), timeoutMs });
}

describe('command check failure headline', () => {
  it('carries the telling line, not the closing hint', async () => {
    const script = 'echo "Job for app.service failed because the control process exited with error code." >&2; echo "See \\"systemctl status app.service\\" for details." >&2; exit 3';
    const result = await attemptOnce(script);
    expect(result.error?.code).toBe('COMMAND_FAILED');
    expect(result.error?.message).toBe(`\`${script}\` exited with code 3: Job for app.service failed because the control process exited with error code.`);
    expect(result.detail).toBe(result.error?.message);
    // the whole output is still there
    expect(result.output).toContain('for details.');
  });

  it('falls back to the last line, and to nothing for a silent command', async () => {
    expect((await attemptOnce('echo starting; echo still starting; exit 1')).error?.message).toMatch(/exited with code 1: still starting$/);
    expect((await attemptOnce('exit 4')).error?.message).toBe('`exit 4` exited with code 4');
  });

  it('a success keeps what it printed', async () => {
    const result = await attemptOnce('echo one; echo two');
    expect(result.ok).toBe(true);
    expect(result.detail).toBe('`echo one; echo two` exited 0: one two');
  });
});
