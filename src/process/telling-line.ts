// The one line of a command's output that says why it failed: tools print the cause first and a generic
// "See 'systemctl status …' for details" or "test failed" last. The full output stays in the step log.
const TELLING = /\b(?:error|fatal|emerg|failed|denied|refused|cannot|not found|no such)/i;

/** The first line that names a failure (error, fatal, emerg, failed, denied, …), else the last non-empty line; trimmed. */
export function tellingLine(output: string): string {
  const lines = output
    .split(/\r\n|\r|\n/)
    .map((line) => line.trim())
    .filter((line) => line.length > 0);
  return lines.find((line) => TELLING.test(line)) ?? lines.at(-1) ?? '';
}
