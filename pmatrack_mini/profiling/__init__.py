"""Profiling: the ``profile`` command (``profile_cli``: MACs and wall time per component and routing mode) and the
costs in context (``cost_context``: each component as a share of the backbone beside the paper's FLOPs column).
The MAC counter itself is the top-level ``pmatrack_mini.profile``: the router's measured expert costs import it, so
it ranks with ``models``, below this package."""
