"""Stop strings, applied to decoded text (not token ids) so they match across token boundaries."""

from __future__ import annotations

# HumanEval-style: the function body ends where a new top-level statement starts.
# "\n```": an instruction-tuned model (the default, Qwen2.5-Coder Instruct) closes its code fence
# after the body even in completion mode; kept, the fence is a syntax error in the program.
FUNCTION_STOPS = ["\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\nassert ", "\n#", "\n```"]
# Whole programs (stdin/stdout problems) may define functions and use __main__; stop only where
# the model starts writing the next problem or a test.
PROGRAM_STOPS = ['\n"""', "\n'''", "\n```", "\n# Test", "\n# Example", "\n# Input"]

CODE_FENCE = "```"


def first_stop(text: str, stops: list[str], start: int = 0) -> int | None:
    """Index of the earliest stop string found at or after `start`, else None."""
    best = None
    for s in stops:
        i = text.find(s, start)
        if i != -1 and (best is None or i < best):
            best = i
    return best


def code_block_end(text: str, prefix_open: bool) -> int | None:
    """Where a fenced code block closes in `text` (instruction answers), else None.

    `prefix_open`: the answer began inside a block (the prompt ended with an opening fence),
    so the first fence in `text` closes it. Otherwise the second fence does.
    """
    i = text.find(CODE_FENCE)
    if i == -1:
        return None
    if prefix_open:
        return i
    j = text.find(CODE_FENCE, i + len(CODE_FENCE))
    if j == -1:
        return None
    return j + len(CODE_FENCE)


class StopChecker:
    """Finds where a growing text must be cut. Rescans only the tail that could hold a new match."""

    def __init__(self, stops: list[str], code_end: bool = False, prefix_open: bool = False):
        self.stops = [s for s in stops if s]
        self.longest = max((len(s) for s in self.stops), default=0)
        self.code_end = code_end
        self.prefix_open = prefix_open
        self._scanned = 0

    def __call__(self, text: str) -> int | None:
        """Cut position in `text`, or None while generation may go on."""
        # Back off a few characters more than the longest stop: the decoded tail can change
        # when a multi-byte character completes.
        start = max(0, self._scanned - self.longest - 4) if self.longest else len(text)
        cut = first_stop(text, self.stops, start) if self.stops else None
        if self.code_end:
            end = code_block_end(text, self.prefix_open)
            if end is not None and (cut is None or end < cut):
                cut = end
        self._scanned = len(text)
        return cut


def trim(text: str, stops: list[str]) -> tuple[str, bool]:
    """Cut `text` at its first stop string; returns (text, whether a stop was found)."""
    cut = first_stop(text, stops)
    return (text, False) if cut is None else (text[:cut], True)
