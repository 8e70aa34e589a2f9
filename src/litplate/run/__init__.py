"""The run machinery around the course's steps: configs and their checks, building the objects of
a run, checkpoints and what may be loaded from them, run directories, resuming, devices, trackers
and sweeps. Kept light: the entry scripts import `litplate.run.config` before torch is needed."""
