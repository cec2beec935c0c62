# moved to codeloop.resumable.plan; kept for callers
from codeloop.resumable.plan import plan_resume

__all__ = ["plan_resume"]
