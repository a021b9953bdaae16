"""The held-out experiment of ``make experiment`` (``python -m fairseq_freelb.experiment``) and the pieces ``make demo`` shares.

- :mod:`.corpus`: the rotten-tomatoes reviews and the train / selection / held-out splits by movie;
- :mod:`.prepare`: MiniLM converted once, the splits binarized;
- :mod:`.runs`: the settings (vanilla, the FreeLB grid, baselines), one fairseq-train run and its log;
- :mod:`.execute`: ``results.json`` with resume, the pool of processes, the CPU time estimate;
- :mod:`.selection`: the selection rule and paired differences (pure);
- :mod:`.report`: ``table.md`` and the accuracy-per-epoch PNG;
- ``__main__``: the command line.
"""
