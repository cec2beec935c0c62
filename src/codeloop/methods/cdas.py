# moved to codeloop.methods.codeact; kept for callers
from codeloop.methods.codeact import *  # noqa: F401,F403
from codeloop.methods.codeact import __all__  # noqa: F401
