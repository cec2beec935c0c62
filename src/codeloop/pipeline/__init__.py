"""Recipes -> stages, run directories, resume, reports."""

from codeloop.rundir import RunDir, StageDir, StageState, config_hash

__all__ = ["RunDir", "StageDir", "StageState", "config_hash"]
