"""Experiments: what puts the pipeline together to answer a question. The ``reproduce`` command and its reports
(``reproduce``, ``reproduce_report``: the paper's ablation tables on generated data), the scorecard of the paper's
claims (``scorecard``), the trained networks the notebooks share (``trained``) and ``make demo`` (``demo``)."""
