# -*- coding: utf-8 -*-
# Copyright: safe-restart contributors
# MIT License
"""HAProxy's runtime API on its stats socket, as safe-restart's haproxy traffic provider (src/traffic/haproxy.ts)
speaks it: one command per connection ("cmd\\n", read until HAProxy closes), `show stat` CSV for what HAProxy sees,
`set server BE/SRV state ready|drain|maint` to move a server, an agent-check paused around a drain (an agent
answering "ready" would undo it within one agent interval), and `show servers state` written to the
server-state-file after every change (a reload would otherwise forget it)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import socket
import tempfile
import time

# show servers state, srv_agent_state: CHK_ST_CONFIGURED
CHECK_CONFIGURED = 0x02
# show stat, check_status of a health check that passed (L4OK tcp, L6OK ssl, L7OK/L7OKC http)
CHECK_PASSED = re.compile(r'^(?:L4OK|L6OK|L7OK|L7OKC)$')
NAME = re.compile(r'^[^\s;\\]+$')


class HaproxyError(Exception):
    pass


def quote(answer):
    text = (answer or '').strip()
    if not text:
        return 'nothing'
    return repr(text if len(text) <= 300 else text[:300] + '...')


def admin_of(status):
    """HAProxy's status word -> the administrative state it implies."""
    if status.startswith('MAINT'):
        return 'maint'
    if status.startswith('DRAIN'):
        return 'drain'
    return 'ready'


def in_rotation(status):
    return status.startswith('UP') or status == 'no check'


def parse_stat(csv):
    lines = csv.split('\n')
    header = next((line for line in lines if line.startswith('# ')), None)
    if header is None:
        return []
    names = header[2:].split(',')
    rows = []
    for line in lines:
        if line and not line.startswith('#'):
            values = line.split(',')
            rows.append(dict((name, values[i] if i < len(values) else '') for i, name in enumerate(names)))
    return rows


def parse_servers_state(text):
    lines = text.split('\n')
    header = next((line for line in lines if line.startswith('# be_id')), None)
    if header is None:
        return []
    names = header[2:].split()
    rows = []
    for line in lines[lines.index(header) + 1:]:
        if line.strip() and not line.startswith('#'):
            values = line.split()
            rows.append(dict((name, values[i] if i < len(values) else '') for i, name in enumerate(names)))
    return rows


class Haproxy(object):
    """One backend of one HAProxy, through its admin-level stats socket."""

    def __init__(self, path, backend, timeout=5.0, state_file=None):
        if not NAME.match(backend):
            raise HaproxyError('"%s" cannot be an HAProxy backend name (whitespace, ";" or "\\")' % backend)
        self.path = path
        self.backend = backend
        self.timeout = timeout
        self.state_file = state_file
        self.commands = []

    def ask(self, command):
        where = 'haproxy socket %s, "%s"' % (self.path, command)
        chunks = []
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            try:
                s.connect(self.path)
                s.sendall((command + '\n').encode('utf-8'))
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
            except socket.timeout:
                raise HaproxyError('%s: no complete answer within %ss' % (where, self.timeout))
            except (IOError, OSError) as e:
                # a reset after HAProxy wrote its answer is still an answer
                if not chunks:
                    raise HaproxyError('%s: cannot talk to HAProxy (%s) - is it running, and is this its stats socket?'
                                       % (where, e))
        finally:
            s.close()
        self.commands.append(command)
        return b''.join(chunks).decode('utf-8', 'replace')

    def change(self, command):
        """A command that answers nothing when it worked; anything else is HAProxy's refusal."""
        answer = self.ask(command)
        if answer.strip():
            raise HaproxyError('haproxy socket %s, "%s": HAProxy answered %s' % (self.path, command, quote(answer)))

    def stat(self):
        answer = self.ask('show stat')
        rows = parse_stat(answer)
        if not rows:
            raise HaproxyError('haproxy socket %s, "show stat": HAProxy answered %s, not its CSV' % (self.path, quote(answer)))
        return dict((r.get('svname'), r) for r in rows if r.get('pxname') == self.backend and r.get('svname') not in ('FRONTEND', 'BACKEND'))

    def row(self, server):
        rows = self.stat()
        if server not in rows:
            raise HaproxyError('haproxy backend %s has no server %s ("show stat" lists %s)'
                               % (self.backend, server, ', '.join(sorted(rows)) or 'none'))
        return rows[server]

    def view(self, server, row=None):
        row = row or self.row(server)
        status = row.get('status', '')
        return dict(server='%s/%s' % (self.backend, server), status=status, admin=admin_of(status),
                    sessions=int(row.get('scur') or 0), queued=int(row.get('qcur') or 0),
                    check=(row.get('check_status') or '').replace('* ', ''), last_check=row.get('last_chk') or None)

    def agent_configured(self, server):
        command = 'show servers state %s' % self.backend
        answer = self.ask(command)
        if not re.match(r'^\d+\n# be_id', answer):
            raise HaproxyError('haproxy socket %s, "%s": HAProxy answered %s' % (self.path, command, quote(answer)))
        row = next((r for r in parse_servers_state(answer) if r.get('srv_name') == server), {})
        return (int(row.get('srv_agent_state') or 0) & CHECK_CONFIGURED) != 0

    def set(self, server, state):
        target = '%s/%s' % (self.backend, server)
        agent = self.agent_configured(server)
        if agent and state != 'ready':
            self.change('disable agent %s' % target)
        self.change('set server %s state %s' % (target, state))
        if agent and state == 'ready':
            self.change('enable agent %s' % target)
        self.save_state()

    def save_state(self):
        """`show servers state` (every backend: the global file is loaded for all) -> state_file, temp + rename."""
        if not self.state_file:
            return
        answer = self.ask('show servers state')
        if not re.match(r'^\d+\n# be_id', answer):
            raise HaproxyError('haproxy socket %s, "show servers state": HAProxy answered %s - the change is made, '
                               'but %s was not written: a reload now would undo it' % (self.path, quote(answer), self.state_file))
        directory = os.path.dirname(os.path.abspath(self.state_file))
        fd, tmp = tempfile.mkstemp(prefix='.haproxy-state-', dir=directory)
        try:
            with os.fdopen(fd, 'w') as f:
                f.write(answer)
                f.flush()
                os.fsync(f.fileno())
            os.rename(tmp, self.state_file)
        except (IOError, OSError) as e:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise HaproxyError('cannot write the HAProxy state file %s (%s) - the change is made at runtime, but a '
                               'reload now would undo it' % (self.state_file, e))

    def poll(self, server, timeout, judge, interval=0.05):
        """judge(view, elapsed_ms) -> (done, ok, detail); asks until done or timeout (2.6 has no blocking wait)."""
        started = time.time()
        while True:
            view = self.view(server)
            elapsed = int((time.time() - started) * 1000)
            done, ok, detail = judge(view, elapsed)
            if done or elapsed >= timeout * 1000:
                return ok, detail, elapsed
            time.sleep(min(interval, max(0.0, timeout - elapsed / 1000.0)))

    def wait_up(self, server, timeout):
        def judge(v, ms):
            if v['status'] == 'no check':
                return True, True, '%s in rotation after %dms (no health check configured: HAProxy cannot say it answers)' % (server, ms)
            # leaving MAINT a server is UP at once, before its first check (check_status INI): wait for one that passed
            if v['status'].startswith('UP') and (v['check'] == '' or CHECK_PASSED.match(v['check'])):
                return True, True, '%s UP after %dms%s' % (server, ms, ' (check %s)' % v['check'] if v['check'] else '')
            why = ' (%s)' % v['last_check'] if v['last_check'] else ''
            return False, False, '%s not UP after %dms: HAProxy says %s%s' % (
                server, ms, v['status'], ', check %s%s' % (v['check'], why) if v['check'] else '')
        return self.poll(server, timeout, judge)

    def wait_drained(self, server, timeout):
        def judge(v, ms):
            if in_rotation(v['status']):
                return True, False, ('%s is in rotation (%s) after %dms, not drained - was the drain undone (an '
                                     'agent-check answering "ready", another admin)?' % (server, v['status'], ms))
            if v['sessions'] == 0 and v['queued'] == 0:
                return True, True, '%s drained after %dms (%s, no sessions, nothing queued)' % (server, ms, v['status'])
            return False, False, '%s still has %d sessions and %d queued after %dms (%s)' % (
                server, v['sessions'], v['queued'], ms, v['status'])
        return self.poll(server, timeout, judge)
