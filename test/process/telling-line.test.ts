import { describe, expect, it } from 'vitest';
import { tellingLine } from '../../src/process/telling-line.js';

describe('tellingLine', () => {
  it('picks nginx -t\'s [emerg] line, not the closing "test failed"', () => {
    const output = 'nginx: [emerg] unknown directive "bogus" in /x/nginx.conf:3\nnginx: configuration file /x/nginx.conf test failed\n';
    expect(tellingLine(output)).toBe('nginx: [emerg] unknown directive "bogus" in /x/nginx.conf:3');
  });

  it('picks systemctl\'s "Job … failed" line, not the "See … for details" hint', () => {
    const output = [
      'Job for nginx.service failed because the control process exited with error code.',
      'See "systemctl status nginx.service" and "journalctl -xeu nginx.service" for details.',
      '',
    ].join('\n');
    expect(tellingLine(output)).toBe('Job for nginx.service failed because the control process exited with error code.');
  });

  it('takes the first telling line, after chatter', () => {
    const output = 'starting worker\nloading config\nError: listen EADDRINUSE: address already in use :::8080\n    at Server.listen\nnode exited\n';
    expect(tellingLine(output)).toBe('Error: listen EADDRINUSE: address already in use :::8080');
  });

  it.each([
    ['FATAL:  password authentication failed for user "app"', 'FATAL'],
    ['open /etc/app.conf: permission denied', 'denied'],
    ['dial tcp 127.0.0.1:5432: connect: connection refused', 'refused'],
    ['cannot open shared object file', 'cannot'],
    ['sh: 1: frobnicate: not found', 'not found'],
    ['cat: /nope: No such file or directory', 'no such'],
  ])('recognises %j (%s)', (line, _word) => {
    expect(tellingLine(`ok so far\n${line}\ndone\n`)).toBe(line);
  });

  it('falls back to the last non-empty line, trimmed', () => {
    expect(tellingLine('one\ntwo  \n\n   \n')).toBe('two');
    expect(tellingLine('progress 10%\rprogress 100%\r\nexit status 3\r\n')).toBe('exit status 3');
  });

  it('returns an empty string for no output', () => {
    expect(tellingLine('')).toBe('');
    expect(tellingLine('\n \n')).toBe('');
  });

  it('does not take words that merely contain a keyword', () => {
    expect(tellingLine('terrorist-mode disabled\nall good\n')).toBe('all good');
  });
});
