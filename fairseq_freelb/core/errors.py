"""The plugin's expected errors: a user's input at fault, reported as one line naming the flag, file or line.

Anything that is not a :class:`FreeLBError` is a bug and keeps its traceback
(:func:`fairseq_freelb.commands.run_command`, :mod:`fairseq_freelb.adapters.runtime`).
"""


class FreeLBError(Exception):
    """An expected failure caused by the user's input; its message is one line that names what is at fault."""


class AdversarialConfigError(FreeLBError, ValueError):
    """A bad ``--adv-*`` flag, an unsupported flag combination, or a task/criterion mismatch.

    fairseq-train prints it as a single line (:func:`fairseq_freelb.adapters.runtime.install`).
    A ``ValueError`` too, as it was before :class:`FreeLBError` existed.
    """
