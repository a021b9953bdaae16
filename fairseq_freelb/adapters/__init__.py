"""The generic fairseq plugin machinery, one job per module.

* :mod:`.config`, :mod:`.run_context`: the ``--adv-*`` flags and what the adversary reads of fairseq's settings;
* :mod:`.criterion_base`: the base of every adversarial criterion (builds and attaches the adversary);
* :mod:`.task_mixin` (with :mod:`.task_label_names`, :mod:`.task_batch_checks`, :mod:`.replay_iterator`):
  the adversarial ``train_step`` of a fairseq task, and what a task does around it;
* :mod:`.sentence_prediction_criterion`, :mod:`.sentence_prediction_task`: ``freelb_sentence_prediction``;
* :mod:`.roberta_hf`: ``--arch roberta_hf``;
* :mod:`.adversarial_logging`: the log entries every criterion shares;
* :mod:`.runtime`: the process-wide settings the plugin's entry points install.

The applications' own tasks and criteria live with them (``fairseq_freelb.mc``).
"""
