"""The held-out protocol (``python -m fairseq_freelb.experiment``, ``make experiment``) and the pieces ``make demo`` shares.

Any task:

- :mod:`.folder`: what a ``glue.preprocess`` / ``mc.preprocess`` folder holds (task, metrics, class count);
- :mod:`.grouping`, :mod:`.splitting`: ``--group-by`` keys, the selection and held-out sides, ``splits.json``;
- :mod:`.materialize`: the sides written as fairseq data by index selection;
- :mod:`.model`: ``--restore-file`` (or random initialisation) and its checks against the data;
- :mod:`.grids`, :mod:`.paper`: FreeLB settings by name, the Table 7 defaults, the recipes, Table 1 for reference;
- :mod:`.folder_command`, :mod:`.folder_plan`: one run's ``fairseq-train`` command and the plan of a folder;
- :mod:`.protocol`: run a plan over seeds (resume through :mod:`fairseq_freelb.multiseed.store`), choose, report;
- :mod:`.selection`: the selection rule and paired differences (pure);
- :mod:`.report`: ``table.md`` and the per-epoch PNG;
- ``__main__``: the command line.

The demo's task (``--preset rt-minilm`` / ``quick``, and ``make demo``):

- :mod:`.corpus`: the rotten-tomatoes reviews and the train / selection / held-out splits by movie;
- :mod:`.prepare`: MiniLM converted once, the splits binarized;
- :mod:`.rt_plan`: the presets;
- :mod:`.runs`: the settings (vanilla, the FreeLB grid, baselines), one fairseq-train run and its log;
- :mod:`.execute`: the pool of processes and the time estimate.
"""
