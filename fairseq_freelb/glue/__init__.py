"""GLUE end to end: preprocessing, metrics, evaluation, multi-seed reports, leaderboard submission.

Commands (``python -m fairseq_freelb.glue.<module> --help``): ``preprocess``,
``predict`` (one task's test predictions), ``evaluate``, ``report`` and
``submission``. Library modules: :mod:`~fairseq_freelb.glue.benchmark_tasks`
(the nine tasks' files, labels and metrics), :mod:`~fairseq_freelb.glue.tsv`
(reading the GLUE files), :mod:`~fairseq_freelb.glue.binarize` (BPE and
fairseq binarizing) and :mod:`~fairseq_freelb.glue.metrics`;
``benchmark_tasks``, ``tsv`` and ``metrics`` import neither fairseq nor torch.
Documentation: docs/glue.md.
"""
