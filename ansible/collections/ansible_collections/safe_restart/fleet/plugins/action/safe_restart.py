# -*- coding: utf-8 -*-
# Copyright: safe-restart contributors
# MIT License
"""Action plugin of safe_restart.fleet.safe_restart.

An async timeout SIGKILLs the remote process group (measured on ansible-core 2.14): a run killed in the
middle of its rollback leaves the service down and the next run refusing with exit 4. So when the task has
`async`, it is compared with the run's worst case (`safe-restart plan --json` → worstCase.totalMs) before
anything runs, and the task is refused when it is shorter."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.plugins.action import ActionBase
from ansible.utils.vars import merge_hash

INFO_MODULE = 'safe_restart.fleet.safe_restart_info'
SHARED_ARGS = ('recipe', 'release', 'vars', 'state_dir', 'binary')


class ActionModule(ActionBase):

    def run(self, tmp=None, task_vars=None):
        # ActionBase.__init__ resets both: set them here, as ansible.builtin's normal action does
        self._supports_check_mode = True
        self._supports_async = True
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        args = self._task.args
        async_val = self._task.async_val
        wrap_async = async_val and not self._connection.has_native_async

        if async_val and args.get('state', 'restarted') == 'restarted':
            plan_args = dict((k, args[k]) for k in SHARED_ARGS if args.get(k) is not None)
            plan_args.update(plan=True, history_limit=0)
            info = self._execute_module(module_name=INFO_MODULE, module_args=plan_args, task_vars=task_vars)
            if info.get('failed'):
                info['msg'] = 'could not read the worst case of the run: %s' % info.get('msg')
                return merge_hash(result, info)
            worst_ms = int(((info.get('plan') or {}).get('worst_case') or {}).get('total_ms') or 0)
            if async_val * 1000 < worst_ms:
                result.update(
                    failed=True, changed=False, outcome='refused', worst_case_ms=worst_ms, async_s=async_val,
                    msg=('async: %ds is shorter than the worst case of this run, %.0fs (forward + rollback, '
                         'safe-restart plan --json worstCase.totalMs): an async timeout SIGKILLs safe-restart, '
                         'possibly mid-rollback, leaving the service down. Raise async to at least %d or drop it. '
                         'Nothing was run.' % (async_val, worst_ms / 1000.0, -(-worst_ms // 1000))),
                )
                return result

        result = merge_hash(result, self._execute_module(task_vars=task_vars, wrap_async=wrap_async))
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result
