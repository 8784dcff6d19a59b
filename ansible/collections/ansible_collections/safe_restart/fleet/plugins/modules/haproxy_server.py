#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: safe-restart contributors
# MIT License

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: haproxy_server
short_description: Drain a server of an HAProxy backend until it has no sessions, or put it back and wait until it is UP
version_added: 0.1.0
description:
  - Talks to HAProxy's runtime API on its admin-level stats socket, the way safe-restart's own haproxy traffic
    provider does. Runs on the load balancer's host; in a rollout, C(delegate_to) that host, with C(throttle)
    set to 1 (see C(ansible/playbooks/rollout.yml), extra var C(safe_restart_haproxy)).
  - V(drained) sets the server's state to C(drain) (no new requests; established ones finish) and waits until
    HAProxy shows no session and nothing queued for it. Refused when no other server of the backend is in
    rotation (the backend would have nothing left to serve with), unless O(allow_last=true).
  - V(ready) sets the server's state to C(ready) and waits until it is UP with a health check that passed
    (leaving MAINT, HAProxy shows a server UP before its first check).
  - An agent-check of the server is disabled before a drain and enabled again after ready (an agent answering
    "ready" would undo a drain within one agent interval). With O(state_file), C(show servers state) is written
    there after every change, so that a reload of HAProxy keeps the state.
author:
  - safe-restart maintainers
options:
  socket:
    description: HAProxy's stats socket, C(stats socket PATH mode 600 level admin).
    type: path
    required: true
  backend:
    description: The backend the server is in.
    type: str
    required: true
  server:
    description: The server's name in the backend.
    type: str
    required: true
  state:
    description: V(drained) out of rotation with no sessions left, V(ready) back in rotation and UP.
    type: str
    choices: [drained, ready]
    required: true
  wait:
    description: Wait until drained or UP (bounded by O(timeout)); V(false) only changes the state.
    type: bool
    default: true
  timeout:
    description: Seconds to wait for the drain or for UP.
    type: int
    default: 30
  on_drain_timeout:
    description:
      - What a drain that has not finished after O(timeout) does.
      - V(fail) puts the server back into rotation and fails (nothing else was touched).
      - V(shutdown) ends the server's remaining sessions (C(shutdown sessions server)) and succeeds.
      - V(proceed) succeeds with the sessions still there.
    type: str
    choices: [fail, shutdown, proceed]
    default: fail
  allow_last:
    description: Drain even when no other server of the backend is in rotation.
    type: bool
    default: false
  state_file:
    description: The path HAProxy's config names in C(server-state-file) (with C(load-server-state-from-file)).
    type: path
attributes:
  check_mode:
    support: full
    details: Reads the server's state and says whether it would change; changes and waits for nothing.
  diff_mode:
    support: full
seealso:
  - module: safe_restart.fleet.safe_restart
  - module: community.general.haproxy
'''

EXAMPLES = r'''
- name: Out of rotation before the restart (on the load balancer, one host at a time)
  safe_restart.fleet.haproxy_server:
    socket: /run/haproxy/admin.sock
    backend: order
    server: "{{ inventory_hostname }}"
    state: drained
    state_file: /var/lib/haproxy/server-state
  delegate_to: lb1
  throttle: 1

- name: Back into rotation once the host is healthy
  safe_restart.fleet.haproxy_server:
    socket: /run/haproxy/admin.sock
    backend: order
    server: "{{ inventory_hostname }}"
    state: ready
  delegate_to: lb1
  throttle: 1
'''

RETURN = r'''
before:
  description: The server as HAProxy saw it before - C(server), C(status), C(admin) (ready, drain, maint), C(sessions), C(queued), C(check), C(last_check).
  returned: always
  type: dict
after:
  description: The same, at the end.
  returned: always
  type: dict
elapsed_ms:
  description: How long the wait for the drain or for UP took.
  returned: when it waited
  type: int
commands:
  description: The runtime API commands sent.
  returned: always
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.safe_restart.fleet.plugins.module_utils.haproxy import (
    NAME, Haproxy, HaproxyError, in_rotation,
)


def drained(module, lb, server, before):
    p = module.params
    others = [name for name, row in lb.stat().items()
              if name != server and in_rotation(row.get('status', ''))]
    if before['admin'] == 'ready' and not others and not p['allow_last']:
        module.fail_json(msg='%s: refusing to drain the last server of backend %s in rotation (the others are not UP) '
                             '- nothing changed; allow_last=true drains it anyway' % (before['server'], lb.backend),
                         before=before, after=before, commands=lb.commands)
    changed = before['admin'] == 'ready'
    diff = dict(before=dict(admin=before['admin']), after=dict(admin='drain' if changed else before['admin']))
    if module.check_mode:
        module.exit_json(changed=changed, before=before, after=before, diff=diff, commands=lb.commands,
                         msg='would drain %s' % before['server'] if changed else '%s is out of rotation' % before['server'])
    if changed:
        lb.set(server, 'drain')
    if not p['wait']:
        module.exit_json(changed=changed, before=before, after=lb.view(server), diff=diff, commands=lb.commands,
                         msg='%s set to drain' % before['server'])
    ok, detail, elapsed = lb.wait_drained(server, p['timeout'])
    if not ok and p['on_drain_timeout'] == 'shutdown' and not in_rotation(lb.view(server)['status']):
        lb.change('shutdown sessions server %s' % before['server'])
        ok, detail = True, '%s - its remaining sessions were shut down (on_drain_timeout=shutdown)' % detail
    elif not ok and p['on_drain_timeout'] == 'proceed' and not in_rotation(lb.view(server)['status']):
        module.warn('%s - going on anyway (on_drain_timeout=proceed)' % detail)
        ok = True
    if not ok:
        if changed:
            lb.set(server, 'ready')
        module.fail_json(msg='%s%s' % (detail, ' - put back into rotation, nothing restarted' if changed else ''),
                         changed=False, before=before, after=lb.view(server), elapsed_ms=elapsed, commands=lb.commands)
    module.exit_json(changed=changed, before=before, after=lb.view(server), diff=diff, elapsed_ms=elapsed,
                     commands=lb.commands, msg=detail)


def ready(module, lb, server, before):
    p = module.params
    changed = before['admin'] != 'ready'
    diff = dict(before=dict(admin=before['admin']), after=dict(admin='ready'))
    if module.check_mode:
        module.exit_json(changed=changed, before=before, after=before, diff=diff, commands=lb.commands,
                         msg='would put %s back into rotation' % before['server'] if changed else '%s is in rotation' % before['server'])
    if changed:
        lb.set(server, 'ready')
    if not p['wait']:
        module.exit_json(changed=changed, before=before, after=lb.view(server), diff=diff, commands=lb.commands,
                         msg='%s set to ready' % before['server'])
    ok, detail, elapsed = lb.wait_up(server, p['timeout'])
    result = dict(changed=changed, before=before, after=lb.view(server), diff=diff, elapsed_ms=elapsed,
                  commands=lb.commands, msg=detail)
    if not ok:
        # left in state ready: HAProxy sends it requests only once its health check passes
        result['msg'] = '%s - it is in state ready, HAProxy will send it requests once its check passes' % detail
        module.fail_json(**result)
    module.exit_json(**result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            socket=dict(type='path', required=True),
            backend=dict(type='str', required=True),
            server=dict(type='str', required=True),
            state=dict(type='str', required=True, choices=['drained', 'ready']),
            wait=dict(type='bool', default=True),
            timeout=dict(type='int', default=30),
            on_drain_timeout=dict(type='str', default='fail', choices=['fail', 'shutdown', 'proceed']),
            allow_last=dict(type='bool', default=False),
            state_file=dict(type='path'),
        ),
        supports_check_mode=True,
    )
    p = module.params
    # a name is pasted into a runtime API line: whitespace or ';' would end the command or start another
    for key in ('backend', 'server'):
        if not NAME.match(p[key]):
            module.fail_json(msg='%s "%s" cannot be an HAProxy name (whitespace, ";" or "\\")' % (key, p[key]))
    try:
        lb = Haproxy(p['socket'], p['backend'], state_file=p['state_file'])
        before = lb.view(p['server'])
        if p['state'] == 'drained':
            drained(module, lb, p['server'], before)
        else:
            ready(module, lb, p['server'], before)
    except HaproxyError as e:
        module.fail_json(msg=str(e))


if __name__ == '__main__':
    main()
