"""GLUE end to end: preprocessing, metrics, evaluation, multi-seed reports, leaderboard submission.

Commands (``python -m fairseq_freelb.glue.<module> --help``): ``preprocess``,
``predict`` (one task's test predictions), ``evaluate``, ``report`` and
``submission``. Library modules: :mod:`~fairseq_freelb.glue.benchmark_tasks`
(the nine tasks' files, labels and metrics), :mod:`~fairseq_freelb.glue.tsv`
(reading the GLUE files), :mod:`~fairseq_freelb.glue.binarize` (BPE and
fairseq binarizing) and :mod:`~fairseq_freelb.glue.leaderboard_files` (the
leaderboard's file format); the metrics are :mod:`fairseq_freelb.metrics`,
shared with the validation criterion. ``benchmark_tasks`` and ``tsv`` import
neither fairseq nor torch.

The paper's test-submission formulations (:mod:`~fairseq_freelb.glue.formulations`):
QNLI as pairwise ranking (:mod:`~fairseq_freelb.glue.qnli_ranking_data`, the
rules, no torch; :mod:`~fairseq_freelb.glue.qnli_ranking`, its data folder,
scores and the dev command; :mod:`~fairseq_freelb.glue.ranking_task`, ``--task
qnli_ranking``), WNLI through WSC (:mod:`~fairseq_freelb.glue.wnli_wsc`, on top
of :mod:`fairseq_freelb.wsc`) and RTE/MRPC/STS-B started from MNLI
(:mod:`~fairseq_freelb.glue.init_from`). Documentation: docs/glue.md.
"""
