"""Tracking: the tracker (``tracker``: one sequence or several in step, pre-alignment, the running homography),
TOCU's template-checked update of that homography (``tocu``), datasets tracked N sequences at a time and the
``track`` command (``track_run``), what a run writes (``track_outputs``) and your own cameras: two videos in, a
side-by-side video out (``track_video``) and the rig's calibration (``calibrate``)."""
