"""The plugin's error types: :class:`FreeLBError` marks an *expected* failure, anything else is a bug.

An expected failure is one a user causes and can fix (a bad flag, a file in
the wrong format, a checkpoint that does not match the data); its message is
one line naming the flag, file or line at fault and the fix. The plugin's
entry points print such an error as that one line: the commands through
:func:`fairseq_freelb.commands.run_command`, fairseq-train through the hook of
:func:`fairseq_freelb.adapters.runtime.install`. Every other exception keeps
its traceback, so a real bug (a ``KeyError`` in the code, say) is never
disguised as a user error.

Pure Python: every floor of the package may import it.
"""


class FreeLBError(Exception):
    """The base of every expected user error of the plugin; its message is the one line a user sees."""


class AdversarialConfigError(FreeLBError, ValueError):
    """A bad ``--adv-*`` flag, an unsupported flag combination, or a task/criterion mismatch.

    Also a ``ValueError``, as it was before the plugin had its own error type.
    fairseq-train prints it as a single line (:func:`fairseq_freelb.adapters.runtime.install`).
    """
