"""Evaluation: how good a tracker and its alignment are. PR / NPR / SR as the LasHeR toolkit computes them
(``evaluate``), per-sequence bootstrap intervals (``intervals``), model-free reference predictions and band
statistics (``reference``), residual alignment error stage by stage (``alignment_metrics``), the router against the
oracle choice (``routing_oracle``) and the pictures that show results (``viz``). Ranks above ``training`` (the oracle
choice scores experts with its losses) and below ``tracking`` (TOCU's template check uses the overlap measure)."""
