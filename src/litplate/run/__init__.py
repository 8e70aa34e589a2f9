"""The run machinery: configs and their checks, builders, checkpoints, devices, trackers, sweeps."""
