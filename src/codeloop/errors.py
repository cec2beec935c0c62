"""Errors a user can cause. The CLI turns them into one clear line and exit code 2."""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input (file, field, key, option): reported without a traceback.

    `where` names the place (``file.jsonl:12``, ``stages.sample.n``, ``--k``) so the message
    always says where to look.
    """

    def __init__(self, message: str, where: str | None = None):
        self.message = message
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


class MissingDependency(UserError):
    """An optional feature was used without its package installed."""

    def __init__(self, feature: str, package: str, extra: str | None = None):
        hint = f"pip install 'codeloop[{extra}]'" if extra else f"pip install {package}"
        super().__init__(f"{feature} needs the package '{package}'. Install it with: {hint}")
