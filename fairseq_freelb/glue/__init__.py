"""GLUE end to end: preprocessing, metrics, evaluation, multi-seed reports, leaderboard submission.

Each module is a command: ``python -m fairseq_freelb.glue.<module> --help``.
:mod:`~fairseq_freelb.glue.tasks_spec` and :mod:`~fairseq_freelb.glue.metrics`
import neither fairseq nor torch.
"""
