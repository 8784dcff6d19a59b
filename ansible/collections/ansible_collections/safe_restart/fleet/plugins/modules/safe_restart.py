#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: safe-restart contributors
# MIT License

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: safe_restart
short_description: Restart a service predictably with safe-restart, rolling back on failed health gates
version_added: 0.1.0
description:
  - Runs C(safe-restart run RECIPE) on the managed host. safe-restart checks every dependency before touching
    anything, stops gracefully, switches the release atomically, starts, proves health with gates and rolls
    back automatically when the proof fails.
  - Declarative. A host whose last good release (C(safe-restart status --json)) already equals O(release) is
    left alone (V(changed=false)) unless O(force=true).
  - Any safe-restart exit code other than 0 fails the task with the run's description ("reason – action").
    Exit 2 (rolled back, healthy on the previous release) and 3 (needs a human) also report V(changed=true),
    something was restarted.
  - In check mode runs C(safe-restart preflight), which touches nothing, and returns O(would_restart) and the
    preflight report, or fails naming why the run would not go ahead.
  - The action plugin of the same name refuses to start when the task's C(async) is shorter than the run's
    worst-case duration (C(safe-restart plan --json) C(worstCase.totalMs)).
author:
  - safe-restart maintainers
options:
  recipe:
    description: Path of the restart recipe (YAML) on the managed host.
    type: path
    required: true
  release:
    description:
      - The release to switch to (C(--release)). Omitted, an in-place restart of the current release,
        which always restarts.
    type: str
  vars:
    description: Recipe variables, passed as C(--var KEY=VALUE).
    type: dict
    default: {}
  reason:
    description: Why this run happens (a ticket id), recorded in the journal, history and evidence (C(--reason)).
    type: str
  state_dir:
    description: safe-restart's state directory (C(--state-dir)); its default otherwise.
    type: path
  binary:
    description: The safe-restart executable, a name looked up in C(PATH) or a path.
    type: str
    default: safe-restart
  force:
    description:
      - With O(state=restarted), restart even when the last good release already equals O(release).
      - With O(state=recovered), C(recover --force) restarts the last good release even when no run is unfinished.
    type: bool
    default: false
  state:
    description:
      - V(restarted) runs C(safe-restart run).
      - V(recovered) runs C(safe-restart recover), which finishes a run that died mid-restart; its exit 2
        ("healthy again") is success (V(changed=true)), exit 0 ("nothing to recover") is V(changed=false).
    type: str
    choices: [restarted, recovered]
    default: restarted
attributes:
  check_mode:
    support: full
    details: Runs C(safe-restart preflight) (or C(status) for O(state=recovered)); nothing is touched.
  diff_mode:
    support: full
notes:
  - The recipe name comes from C(safe-restart plan RECIPE --json).
seealso:
  - module: safe_restart.fleet.safe_restart_info
'''

EXAMPLES = r'''
- name: Roll the order service to v42
  safe_restart.fleet.safe_restart:
    recipe: /etc/safe-restart/order-service.yaml
    release: v42
    reason: CHG-1234
    vars:
      PORT: "8080"

- name: Finish a restart that died half-way
  safe_restart.fleet.safe_restart:
    recipe: /etc/safe-restart/order-service.yaml
    state: recovered

- name: Can we deploy now? (touches nothing)
  safe_restart.fleet.safe_restart:
    recipe: /etc/safe-restart/order-service.yaml
    release: v42
  check_mode: true
'''

RETURN = r'''
recipe_name:
  description: The recipe's C(name).
  returned: always
  type: str
  sample: order-service
outcome:
  description: The run's outcome, or V(already_current) / V(nothing_to_recover) when nothing ran.
  returned: always
  type: str
  sample: succeeded
exit_code:
  description: safe-restart's exit code (0 succeeded, 1 nothing touched, 2 rolled back, 3 needs a human, 4 locked).
  returned: when a command ran
  type: int
previous_release:
  description: The release active before the run (PREVIOUS).
  returned: always
  type: str
target_release:
  description: The release the run switched to (TARGET).
  returned: always
  type: str
description:
  description: The run's summary in words, "reason – action".
  returned: when safe-restart ran
  type: str
run_id:
  description: The run id, also the journal's name.
  returned: when safe-restart ran
  type: str
duration_ms:
  description: How long the run took.
  returned: when safe-restart ran
  type: int
journal:
  description: Path of the run's journal.
  returned: when safe-restart ran
  type: str
evidence:
  description: Path of the evidence bundle (exit 2, 3 and a dependency failure), else null.
  returned: when safe-restart ran
  type: str
timeline:
  description: The phases of the run, each with start, duration and result.
  returned: when safe-restart ran
  type: list
  elements: dict
left_state:
  description: Exit 3 only, what is running and what to check first.
  returned: when safe-restart ran
  type: raw
would_restart:
  description: Check mode, whether a run would go ahead.
  returned: check mode
  type: bool
preflight:
  description: Check mode, the C(safe-restart preflight --json) report (snake_case keys).
  returned: check mode, when preflight ran
  type: dict
diff:
  description: The last good release before and after.
  returned: always
  type: dict
  sample: {before: {release: v41}, after: {release: v42}}
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.safe_restart.fleet.plugins.module_utils.safe_restart import (
    EXIT_FAILED_NOTHING_TOUCHED, EXIT_LOCKED, EXIT_ROLLED_BACK, EXIT_NEEDS_HUMAN, EXIT_SUCCEEDED,
    SafeRestartCLI, SafeRestartError, common_argument_spec, locked_message, recipe_status, snake_keys,
    summary_result,
)


def release_diff(before, after):
    return {'before': {'release': before}, 'after': {'release': after}}


def restarted(module, cli, name, current):
    p = module.params
    last_good = current.get('lastGoodRelease') if current else None
    pending = bool(current and (current.get('unfinished') or current.get('inProgress')))
    base = dict(recipe_name=name, previous_release=last_good)

    if p['release'] and last_good == p['release'] and not p['force'] and not pending:
        if module.check_mode:
            base['would_restart'] = False
        module.exit_json(changed=False, outcome='already_current', target_release=p['release'],
                         msg='%s is already on release %s' % (name, last_good),
                         diff=release_diff(last_good, last_good), **base)

    if module.check_mode:
        rc, report = cli.preflight(p['recipe'], release=p['release'], variables=p['vars'])
        report = snake_keys(report)
        base.update(previous_release=report.get('previous_release', last_good),
                    target_release=report.get('target_release', p['release']), preflight=report, exit_code=rc)
        if rc == EXIT_SUCCEEDED:
            module.exit_json(changed=True, would_restart=True, outcome='would_restart',
                             msg='preflight passed: a run would go ahead (%s → %s)' % (base['previous_release'], base['target_release']),
                             diff=release_diff(last_good, base['target_release']), **base)
        if rc == EXIT_LOCKED:
            msg = locked_message(p['recipe'], report.get('reason') or 'locked')
        else:
            msg = 'preflight: the run would abort, nothing touched: %s' % (report.get('reason') or 'see preflight')
        module.fail_json(msg=msg, would_restart=False, outcome='locked' if rc == EXIT_LOCKED else 'aborted', **base)

    rc, summary, err = cli.restart('run', p['recipe'], release=p['release'], vars=p['vars'], reason=p['reason'])
    finish(module, cli, rc, summary, err, last_good, name)


def recovered(module, cli, name, current):
    p = module.params
    last_good = current.get('lastGoodRelease') if current else None
    unfinished = bool(current and current.get('unfinished'))
    if module.check_mode:
        would = unfinished or p['force']
        module.exit_json(changed=would, would_restart=would, recipe_name=name, previous_release=last_good,
                         outcome='would_recover' if would else 'nothing_to_recover',
                         msg='a run of %s is unfinished: recover would restart %s' % (name, last_good) if unfinished
                         else 'nothing to recover for %s' % name,
                         diff=release_diff(last_good, last_good))
    rc, event, err = cli.restart('recover', p['recipe'], vars=p['vars'], force=p['force'], reason=p['reason'])
    if event.get('event') == 'nothing_to_recover':
        module.exit_json(changed=False, outcome='nothing_to_recover', exit_code=rc, recipe_name=name,
                         msg=event.get('message'), previous_release=last_good, target_release=last_good,
                         last_run=snake_keys(event.get('lastRun')), needs_human=snake_keys(event.get('needsHuman')),
                         diff=release_diff(last_good, last_good))
    finish(module, cli, rc, event, err, last_good, name)


def finish(module, cli, rc, event, err, last_good, name):
    summary = event.get('summary') or {}
    result = summary_result(summary)
    result.update(recipe_name=name, exit_code=rc, commands=[c['argv'] for c in cli.commands])
    after = summary.get('targetRelease') if rc == EXIT_SUCCEEDED else (
        summary.get('previousRelease') if rc == EXIT_ROLLED_BACK else None)
    result['diff'] = release_diff(last_good, after if rc in (EXIT_SUCCEEDED, EXIT_ROLLED_BACK) else 'unknown')
    changed = rc in (EXIT_SUCCEEDED, EXIT_ROLLED_BACK, EXIT_NEEDS_HUMAN)
    if rc == EXIT_SUCCEEDED or (rc == EXIT_ROLLED_BACK and module.params['state'] == 'recovered'):
        module.exit_json(changed=True, msg=summary.get('description'), **result)
    if rc == EXIT_LOCKED:
        msg = locked_message(module.params['recipe'], summary.get('description') or (err or '').strip())
    elif rc == EXIT_FAILED_NOTHING_TOUCHED:
        msg = summary.get('description') or (err or '').strip()
    else:
        msg = summary.get('description') or (err or '').strip() or 'safe-restart exited %s' % rc
    module.fail_json(msg=msg, changed=changed, stderr=err, **result)


def main():
    argument_spec = common_argument_spec()
    argument_spec.update(
        recipe=dict(type='path', required=True),
        release=dict(type='str'),
        vars=dict(type='dict', default={}),
        reason=dict(type='str'),
        force=dict(type='bool', default=False),
        state=dict(type='str', default='restarted', choices=['restarted', 'recovered']),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    cli = SafeRestartCLI(module)
    recipe = module.params['recipe']
    try:
        name = cli.recipe_name(recipe, module.params['vars'])
        current = recipe_status(cli.status(name), name)
        if module.params['state'] == 'recovered':
            recovered(module, cli, name, current)
        else:
            restarted(module, cli, name, current)
    except SafeRestartError as e:
        module.fail_json(msg=e.msg, **e.result)


if __name__ == '__main__':
    main()
