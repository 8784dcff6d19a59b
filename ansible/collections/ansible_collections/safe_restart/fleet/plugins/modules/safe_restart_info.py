#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: safe-restart contributors
# MIT License

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: safe_restart_info
short_description: What safe-restart knows on a host - status, history, and optionally the plan
version_added: 0.1.0
description:
  - Reads C(safe-restart status --json) and C(safe-restart history --json --limit N) and returns them, also as
    the facts C(safe_restart_status) and C(safe_restart_history).
  - With O(plan=true) also returns C(safe-restart plan RECIPE --json) (the resolved plan, whether the target
    exists, the worst-case duration). Every command it runs only reads; it is safe in check mode.
author:
  - safe-restart maintainers
options:
  name:
    description: A recipe name; only that recipe's status and history. Default, every recipe in the state directory.
    type: str
  recipe:
    description: A recipe file; its C(name) is used as O(name) when O(name) is not given. Required with O(plan).
    type: path
  release:
    description: With O(plan), the release to plan for.
    type: str
  vars:
    description: With O(recipe), recipe variables (C(--var KEY=VALUE)).
    type: dict
    default: {}
  history_limit:
    description: How many past runs to return, newest first; V(0) skips the history.
    type: int
    default: 10
  plan:
    description: Also return the plan of O(recipe).
    type: bool
    default: false
  state_dir:
    description: safe-restart's state directory (C(--state-dir)).
    type: path
  binary:
    description: The safe-restart executable, a name looked up in C(PATH) or a path.
    type: str
    default: safe-restart
attributes:
  check_mode:
    support: full
    details: Only reads.
  facts:
    support: full
seealso:
  - module: safe_restart.fleet.safe_restart
'''

EXAMPLES = r'''
- name: What is deployed where
  safe_restart.fleet.safe_restart_info:
    recipe: /etc/safe-restart/order-service.yaml
    history_limit: 5
  register: sr

- ansible.builtin.debug:
    msg: "last good release: {{ sr.status[0].last_good_release }}"
'''

RETURN = r'''
status:
  description: C(status --json) C(recipes), snake_case keys (C(last_good_release), C(last_run), C(unfinished) ...).
  returned: always
  type: list
  elements: dict
history:
  description: C(history --json) C(runs), newest first, snake_case keys.
  returned: always
  type: list
  elements: dict
plan:
  description: C(plan --json), snake_case keys (C(worst_case.total_ms) ...).
  returned: when O(plan=true)
  type: dict
recipe_name:
  description: The recipe name the status and history were filtered by.
  returned: when O(name) or O(recipe) is given
  type: str
ansible_facts:
  description: C(safe_restart_status) and C(safe_restart_history), as above.
  returned: always
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.safe_restart.fleet.plugins.module_utils.safe_restart import (
    SafeRestartCLI, SafeRestartError, common_argument_spec, snake_keys,
)


def main():
    argument_spec = common_argument_spec()
    argument_spec.update(
        name=dict(type='str'),
        recipe=dict(type='path'),
        release=dict(type='str'),
        vars=dict(type='dict', default={}),
        history_limit=dict(type='int', default=10),
        plan=dict(type='bool', default=False),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           required_if=[('plan', True, ('recipe',))])
    p = module.params
    cli = SafeRestartCLI(module)
    result = dict(changed=False)
    try:
        name = p['name']
        if p['recipe']:
            plan = cli.plan(p['recipe'], release=p['release'], variables=p['vars'])
            name = name or plan['recipe']
            if p['plan']:
                result['plan'] = snake_keys(plan)
        if name:
            result['recipe_name'] = name
        result['status'] = snake_keys(cli.status(name))
        result['history'] = snake_keys(cli.history(name, p['history_limit'])) if p['history_limit'] > 0 else []
    except SafeRestartError as e:
        module.fail_json(msg=e.msg, **e.result)
    result['ansible_facts'] = dict(safe_restart_status=result['status'], safe_restart_history=result['history'])
    module.exit_json(**result)


if __name__ == '__main__':
    main()
