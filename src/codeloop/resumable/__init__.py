"""Resumable stages over run folders: sample into a stage, execute into a stage.

A killed stage picks up where it stopped: samples already written are kept, and a stored verdict
is reused only if it judged the program its sample stands for now (see `plan.py`). Used by
evaluation (`codeloop eval`) and by the methods that sample and execute (pairs, GiFT).
"""

from codeloop.resumable.execute import execute_into
from codeloop.resumable.plan import ResumePlan, plan_resume, sample_key
from codeloop.resumable.sample import sample_into

__all__ = ["sample_into", "execute_into", "plan_resume", "ResumePlan", "sample_key"]
