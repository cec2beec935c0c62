"""`easy`: a built-in, seeded suite of easy HumanEval-style problems with a fixed train/test split.

It exists so that a small model on a CPU shows a measurable learning signal: HumanEval is too hard
for a 270M-parameter base model. Each family (list, string, arithmetic, dictionary, loop, ...) is a
set of templates; each template is instantiated over a grid of constants, so the problems differ in
what the function must compute, not only in names. Difficulty: 1 = one builtin call, 2 = a
condition or a filter, 3 = a loop with state.

Everything is deterministic: the inputs of problem ``easy/<family>/<k>`` come from a
``random.Random`` seeded with its task_id (string seeds hash with SHA-512, the same on every
machine) and expected outputs come from running the canonical solution. Prompts follow HumanEval
exactly: imports, signature, docstring with ``>>>`` examples; tests are ``def check(candidate)``
with the examples and 3-6 hidden cases.

The split holds out whole templates: a problem's template is its reference body with every
constant and string masked, and a SHA-256 hash of the template puts all of its instances in
``train`` or all in ``test`` (about 20% of the templates are test). So no test problem's
reference body appears in train with other constants: a model cannot pass the test split by
recalling a template it was trained on (`codeloop problems stats easy` prints the overlap, 0).
The first split (a hash of the task_id, where 620 of 630 test problems shared a template with
train) stays reachable as ``train-v1`` / ``test-v1`` for old runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import string
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Iterator

from codeloop.problems.registry import ProblemSet, register
from codeloop.problems.templates import template_key
from codeloop.records import Problem

SPLITS = ("train", "test", "train-v1", "test-v1")
TEST_FRACTION_PERCENT = 28  # of templates (~19% of the problems)
V1_TEST_PERCENT = 20  # of task_ids, in the first split
N_EXAMPLES = 2

WORDS = ("apple", "river", "stone", "cloud", "green", "table", "music", "light", "tiger", "house", "bread", "smile",
         "ocean", "pencil", "garden", "rocket", "yellow", "window", "planet", "silver", "dog", "cat", "sun", "sky",
         "tree", "moon", "fish", "bird", "road", "book", "code", "data", "star", "rain", "snow", "fire", "wind",
         "lamp", "door", "king", "queen", "orange", "banana", "cherry", "lemon", "mango", "olive", "elephant",
         "computer", "mountain", "keyboard", "sunshine", "notebook", "butterfly", "adventure", "zebra", "quiz", "jam",
         "box", "wave", "fox", "jungle", "pizza", "quick", "vivid")
KEYS = ("a", "b", "c", "x", "y", "z", "red", "blue", "one", "two", "key", "cat", "dog", "sun")
LETTERS = "abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class Spec:
    """One problem before its tests exist: what to compute, and how to draw inputs."""
    name: str
    doc: str
    args: tuple[tuple[str, str], ...]  # (name, annotation)
    ret: str
    body: str  # canonical body, 4-space indented
    gen: Callable[[random.Random], tuple]
    level: int


# -------------------------------------------------------------------------------------------
# Input drawing


def _ints(rng: random.Random, lo: int = -10, hi: int = 30, n_lo: int = 0, n_hi: int = 8) -> list[int]:
    return [rng.randint(lo, hi) for _ in range(rng.randint(n_lo, n_hi))]


def _word(rng: random.Random) -> str:
    return rng.choice(WORDS)


def _text(rng: random.Random, n_lo: int = 1, n_hi: int = 5) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(n_lo, n_hi)))


def _text_with(rng: random.Random, c: str, where: str, n_lo: int = 1, n_hi: int = 5) -> str:
    """A sentence in which, half of the time, one word starts with / ends with / contains `c`."""
    words = [rng.choice(WORDS) for _ in range(rng.randint(n_lo, n_hi))]
    if rng.random() < 0.5:
        w = rng.choice(WORDS)
        i = rng.randrange(len(w) + 1)
        words[rng.randrange(len(words))] = {"start": c + w, "end": w + c, "in": w[:i] + c + w[i:]}[where]
    return " ".join(words)


def _mixed(rng: random.Random) -> str:
    pool = LETTERS + LETTERS.upper() + string.digits + "  "
    return "".join(rng.choice(pool) for _ in range(rng.randint(0, 10)))


def _dict(rng: random.Random, lo: int = -5, hi: int = 20) -> dict[str, int]:
    keys = rng.sample(KEYS, rng.randint(1, 5))
    return {k: rng.randint(lo, hi) for k in keys}


def _one(f: Callable[[random.Random], Any]) -> Callable[[random.Random], tuple]:
    return lambda rng: (f(rng),)


INTS = "List[int]"
STRS = "List[str]"
DICT = "Dict[str, int]"


def _s(name: str, doc: str, args: tuple[tuple[str, str], ...], ret: str, body: str,
       gen: Callable[[random.Random], tuple], level: int) -> Spec:
    return Spec(name, doc, args, ret, "\n".join("    " + line for line in body.split("\n")) + "\n", gen, level)


NUMS = (("numbers", INTS),)
N = (("n", "int"),)
S = (("s", "str"),)
TEXT = (("sentence", "str"),)
D = (("d", DICT),)

# -------------------------------------------------------------------------------------------
# Families. Each returns its specs in a fixed order; the index in that list is the k of the task_id.


def fam_arithmetic() -> list[Spec]:
    out = []
    x = (("x", "int"),)
    gx = _one(lambda r: r.randint(-20, 50))
    for a in range(2, 10):
        for b in range(1, 13):
            out.append(_s("scale_and_shift", f"Return x multiplied by {a}, plus {b}.", x, "int",
                          f"return x * {a} + {b}", gx, 1))
    for a in range(1, 10):
        for b in range(2, 10):
            out.append(_s("shift_and_scale", f"Add {a} to x and return the result multiplied by {b}.", x, "int",
                          f"return (x + {a}) * {b}", gx, 1))
    for a in range(1, 21):
        out.append(_s("square_plus", f"Return the square of x plus {a}.", x, "int", f"return x * x + {a}", gx, 1))
    for a in range(2, 13):
        out.append(_s("floor_divide", f"Return x divided by {a}, rounded down to an integer.", x, "int",
                      f"return x // {a}", gx, 1))
        out.append(_s("remainder", f"Return the remainder of x divided by {a} (Python's % operator).", x, "int",
                      f"return x % {a}", gx, 1))
    for a in range(1, 31):
        out.append(_s("subtract_from", f"Return {a} minus x.", x, "int", f"return {a} - x", gx, 1))
    return out


def fam_two_numbers() -> list[Spec]:
    out = []
    ab = (("a", "int"), ("b", "int"))
    gab = lambda r: (r.randint(-20, 40), r.randint(-20, 40))  # noqa: E731
    for k in range(1, 41):
        out.append(_s("product_plus", f"Return a times b plus {k}.", ab, "int", f"return a * b + {k}", gab, 1))
        out.append(_s("sum_times", f"Return the sum of a and b multiplied by {k}.", ab, "int",
                      f"return (a + b) * {k}", gab, 1))
        out.append(_s("distance_plus", f"Return the absolute difference between a and b, plus {k}.", ab, "int",
                      f"return abs(a - b) + {k}", gab, 1))
        out.append(_s("larger_times", f"Return the larger of a and b multiplied by {k}.", ab, "int",
                      f"if a > b:\n    return a * {k}\nreturn b * {k}", gab, 2))
        out.append(_s("smaller_minus", f"Return the smaller of a and b minus {k}.", ab, "int",
                      f"if a < b:\n    return a - {k}\nreturn b - {k}", gab, 2))
    for k in range(2, 22):
        out.append(_s("sum_mod", f"Return the sum of a and b modulo {k}.", ab, "int", f"return (a + b) % {k}", gab, 1))
    return out


def fam_number_check() -> list[Spec]:
    out = []
    g = _one(lambda r: r.randint(-30, 120))
    for k in range(2, 21):
        out.append(_s("is_multiple", f"Return True if n is divisible by {k}, otherwise False.", N, "bool",
                      f"return n % {k} == 0", _one(lambda r, k=k: r.randint(-5, 20) * k + r.choice((0, 0, 1, 2))), 1))
    for lo in range(0, 50, 5):
        for w in (5, 10, 20):
            hi = lo + w
            out.append(_s("in_range", f"Return True if n is between {lo} and {hi} (both included).", N, "bool",
                          f"return {lo} <= n <= {hi}", _one(lambda r, lo=lo, hi=hi: r.randint(lo - 8, hi + 8)), 2))
    for a in range(2, 10):
        for b in range(a + 1, 11):
            if b % a == 0:
                continue
            out.append(_s("multiple_of_either", f"Return True if n is divisible by {a} or by {b}.", N, "bool",
                          f"return n % {a} == 0 or n % {b} == 0", g, 2))
            out.append(_s("multiple_of_both", f"Return True if n is divisible by both {a} and {b}.", N, "bool",
                          f"return n % {a} == 0 and n % {b} == 0",
                          _one(lambda r, m=a * b: r.randint(0, 6) * m + r.choice((0, 0, 1, 2, 3))), 2))
    for d in range(10):
        out.append(_s("ends_with_digit", f"Return True if the last digit of the non-negative integer n is {d}.", N,
                      "bool", f"return n % 10 == {d}", _one(lambda r, d=d: r.randint(0, 30) * 10 + r.choice((d, d, (d + 3) % 10))), 1))
    for k in range(0, 31):
        out.append(_s("big_and_even", f"Return True if n is greater than {k} and even.", N, "bool",
                      f"return n > {k} and n % 2 == 0", _one(lambda r, k=k: r.randint(k - 10, k + 10)), 2))
        out.append(_s("small_and_odd", f"Return True if n is smaller than {k} and odd.", N, "bool",
                      f"return n < {k} and n % 2 == 1", _one(lambda r, k=k: r.randint(k - 10, k + 10)), 2))
    return out


def fam_digits() -> list[Spec]:
    out = []
    g = _one(lambda r: r.randint(0, 10 ** r.randint(1, 7)))
    for d in range(10):
        out.append(_s("count_digit", f"Return how many times the digit {d} appears in the non-negative integer n.",
                      N, "int", f"return str(n).count('{d}')", g, 2))
        out.append(_s("has_digit", f"Return True if the digit {d} appears in the non-negative integer n.", N,
                      "bool", f"return '{d}' in str(n)", g, 2))
    for d in range(0, 9):
        out.append(_s("count_digits_above", f"Return how many digits of the non-negative integer n are greater "
                      f"than {d}.", N, "int", f"return sum(1 for c in str(n) if int(c) > {d})", g, 2))
    for d in range(2, 10):
        out.append(_s("sum_small_digits", f"Return the sum of the digits of the non-negative integer n that are "
                      f"smaller than {d}.", N, "int", f"return sum(int(c) for c in str(n) if int(c) < {d})", g, 3))
    for k in range(1, 11):
        out.append(_s("digit_sum_times", f"Return the sum of the digits of the non-negative integer n, multiplied "
                      f"by {k}.", N, "int", f"return sum(int(c) for c in str(n)) * {k}", g, 2))
        out.append(_s("reverse_plus", f"Return the non-negative integer n with its digits reversed, plus {k}.", N,
                      "int", f"return int(str(n)[::-1]) + {k}", g, 2))
    out.append(_s("largest_digit", "Return the largest digit of the non-negative integer n.", N, "int",
                  "return max(int(c) for c in str(n))", g, 2))
    out.append(_s("smallest_digit", "Return the smallest digit of the non-negative integer n.", N, "int",
                  "return min(int(c) for c in str(n))", g, 2))
    out.append(_s("count_even_digits", "Return how many digits of the non-negative integer n are even.", N, "int",
                  "return sum(1 for c in str(n) if int(c) % 2 == 0)", g, 2))
    out.append(_s("digit_product", "Return the product of the digits of the non-negative integer n.", N, "int",
                  "result = 1\nfor c in str(n):\n    result *= int(c)\nreturn result", g, 3))
    return out


def fam_list_reduce() -> list[Spec]:
    out = [_s("total", "Return the sum of the numbers in the list.", NUMS, "int", "return sum(numbers)",
              _one(_ints), 1),
           _s("sum_of_squares", "Return the sum of the squares of the numbers in the list.", NUMS, "int",
              "return sum(x * x for x in numbers)", _one(_ints), 2),
           _s("product", "Return the product of the numbers in the list (1 for an empty list).", NUMS, "int",
              "result = 1\nfor x in numbers:\n    result *= x\nreturn result",
              _one(lambda r: _ints(r, -5, 9, 0, 6)), 3)]
    for k in range(-5, 31):
        out.append(_s("sum_above", f"Return the sum of the numbers in the list that are greater than {k}.", NUMS,
                      "int", f"return sum(x for x in numbers if x > {k})", _one(lambda r, k=k: _ints(r, k - 15, k + 15)), 2))
        out.append(_s("sum_below", f"Return the sum of the numbers in the list that are smaller than {k}.", NUMS,
                      "int", f"return sum(x for x in numbers if x < {k})", _one(lambda r, k=k: _ints(r, k - 15, k + 15)), 2))
    for k in range(2, 13):
        out.append(_s("sum_multiples", f"Return the sum of the numbers in the list that are divisible by {k}.", NUMS,
                      "int", f"return sum(x for x in numbers if x % {k} == 0)", _one(_ints), 2))
    for k in range(2, 7):
        out.append(_s("sum_every_kth", f"Return the sum of the numbers at positions 0, {k}, {2 * k}, ... of the list.",
                      NUMS, "int", f"total = 0\nfor i in range(0, len(numbers), {k}):\n    total += numbers[i]\n"
                      "return total", _one(lambda r: _ints(r, -10, 30, 0, 12)), 3))
    for k in range(2, 11):
        out.append(_s("scaled_sum", f"Return the sum of the numbers in the list multiplied by {k}.", NUMS, "int",
                      f"return sum(numbers) * {k}", _one(_ints), 1))
    for k in range(1, 21):
        out.append(_s("max_plus", f"Return the largest number in the non-empty list plus {k}.", NUMS, "int",
                      f"return max(numbers) + {k}", _one(lambda r: _ints(r, n_lo=1)), 1))
        out.append(_s("min_minus", f"Return the smallest number in the non-empty list minus {k}.", NUMS, "int",
                      f"return min(numbers) - {k}", _one(lambda r: _ints(r, n_lo=1)), 1))
    return out


_CONDITIONS: list[tuple[str, str, str, Callable[[int], tuple[int, int]]]] = []
for _k in range(-5, 26):
    _CONDITIONS.append(("above", f"greater than {_k}", f"x > {_k}", lambda k=_k: (k - 12, k + 12)))
    _CONDITIONS.append(("below", f"smaller than {_k}", f"x < {_k}", lambda k=_k: (k - 12, k + 12)))
for _k in range(2, 13):
    _CONDITIONS.append(("multiple", f"divisible by {_k}", f"x % {_k} == 0", lambda: (-10, 40)))
for _k in range(0, 21):
    _CONDITIONS.append(("not_equal", f"different from {_k}", f"x != {_k}", lambda k=_k: (k - 2, k + 2)))
for _k in range(-10, 31):
    _CONDITIONS.append(("at_least", f"greater than or equal to {_k}", f"x >= {_k}", lambda k=_k: (k - 12, k + 12)))
    _CONDITIONS.append(("at_most", f"smaller than or equal to {_k}", f"x <= {_k}", lambda k=_k: (k - 12, k + 12)))
for _lo in range(-5, 25, 5):
    for _w in (3, 5, 10):
        _CONDITIONS.append(("between", f"between {_lo} and {_lo + _w} (both included)", f"{_lo} <= x <= {_lo + _w}",
                            lambda lo=_lo, w=_w: (lo - 8, lo + w + 8)))
_CONDITIONS += [("even", "even", "x % 2 == 0", lambda: (-10, 30)), ("odd", "odd", "x % 2 == 1", lambda: (-10, 30)),
                ("negative", "negative", "x < 0", lambda: (-10, 10)), ("positive", "positive", "x > 0", lambda: (-10, 10))]


def _cond_gen(bounds: Callable[[], tuple[int, int]]) -> Callable[[random.Random], tuple]:
    lo, hi = bounds()
    return _one(lambda r: _ints(r, lo, hi))


def fam_list_count() -> list[Spec]:
    return [_s(f"count_{tag}", f"Return how many numbers in the list are {text}.", NUMS, "int",
               f"return sum(1 for x in numbers if {cond})", _cond_gen(b), 2) for tag, text, cond, b in _CONDITIONS]


def fam_list_filter() -> list[Spec]:
    return [_s(f"keep_{tag}", f"Return a list of the numbers in the list that are {text}, in their original "
               "order.", NUMS, INTS, f"return [x for x in numbers if {cond}]", _cond_gen(b), 2)
            for tag, text, cond, b in _CONDITIONS]


def fam_list_index() -> list[Spec]:
    out = []
    for tag, text, cond, b in _CONDITIONS:
        out.append(_s(f"first_{tag}", f"Return the index of the first number in the list that is {text}, or -1 if "
                      "there is none.", NUMS, "int",
                      f"for i, x in enumerate(numbers):\n    if {cond}:\n        return i\nreturn -1", _cond_gen(b), 3))
    for tag, text, cond, b in _CONDITIONS[::3]:
        out.append(_s(f"last_{tag}", f"Return the index of the last number in the list that is {text}, or -1 if "
                      "there is none.", NUMS, "int",
                      f"result = -1\nfor i, x in enumerate(numbers):\n    if {cond}:\n        result = i\nreturn result",
                      _cond_gen(b), 3))
    return out


def fam_list_map() -> list[Spec]:
    out = []
    g = _one(_ints)
    for k in range(2, 16):
        out.append(_s("multiply_all", f"Return a new list with every number multiplied by {k}.", NUMS, INTS,
                      f"return [x * {k} for x in numbers]", g, 1))
        out.append(_s("mod_all", f"Return a new list with every number replaced by its remainder modulo {k}.", NUMS,
                      INTS, f"return [x % {k} for x in numbers]", g, 1))
    for k in range(1, 21):
        out.append(_s("add_to_all", f"Return a new list with {k} added to every number.", NUMS, INTS,
                      f"return [x + {k} for x in numbers]", g, 1))
        out.append(_s("square_plus_all", f"Return a new list with every number squared plus {k}.", NUMS, INTS,
                      f"return [x * x + {k} for x in numbers]", g, 1))
        out.append(_s("clip_above", f"Return a new list where every number greater than {k} is replaced by {k}.",
                      NUMS, INTS, f"return [min(x, {k}) for x in numbers]", _one(lambda r, k=k: _ints(r, k - 10, k + 10)), 2))
        out.append(_s("zero_above", f"Return a new list where every number greater than {k} is replaced by 0.",
                      NUMS, INTS, f"return [0 if x > {k} else x for x in numbers]", _one(lambda r, k=k: _ints(r, k - 10, k + 10)), 2))
        out.append(_s("distance_to", f"Return a new list with the distance (absolute difference) of every number "
                      f"to {k}.", NUMS, INTS, f"return [abs(x - {k}) for x in numbers]", g, 2))
        out.append(_s("double_evens_plus", f"Return a new list where even numbers are doubled and odd numbers get "
                      f"{k} added.", NUMS, INTS, f"return [x * 2 if x % 2 == 0 else x + {k} for x in numbers]", g, 2))
    return out


def fam_list_pairs() -> list[Spec]:
    out = [_s("differences", "Return the list of differences between each number and the one before it.", NUMS,
              INTS, "return [b - a for a, b in zip(numbers, numbers[1:])]", _one(_ints), 3),
           _s("running_sum", "Return the list of running sums: element i is the sum of the first i + 1 numbers.",
              NUMS, INTS, "result = []\ntotal = 0\nfor x in numbers:\n    total += x\n    result.append(total)\n"
              "return result", _one(_ints), 3),
           _s("running_max", "Return the list of running maxima: element i is the largest of the first i + 1 "
              "numbers.", NUMS, INTS, "result = []\nfor x in numbers:\n    result.append(x if not result else "
              "max(result[-1], x))\nreturn result", _one(_ints), 3),
           _s("is_sorted", "Return True if the numbers are in non-decreasing order.", NUMS, "bool",
              "return all(a <= b for a, b in zip(numbers, numbers[1:]))",
              _one(lambda r: sorted(_ints(r)) if r.random() < 0.5 else _ints(r)), 3),
           _s("count_rises", "Return how many numbers are greater than the number just before them.", NUMS, "int",
              "return sum(1 for a, b in zip(numbers, numbers[1:]) if b > a)", _one(_ints), 3)]
    for k in range(0, 41):
        out.append(_s("count_big_pairs", f"Return how many pairs of neighbouring numbers have a sum greater than {k}.",
                      NUMS, "int", f"return sum(1 for a, b in zip(numbers, numbers[1:]) if a + b > {k})",
                      _one(lambda r, k=k: _ints(r, k // 2 - 15, k // 2 + 15)), 3))
    for k in range(0, 21):
        out.append(_s("count_jumps", f"Return how many pairs of neighbouring numbers differ by more than {k} (in "
                      "absolute value).", NUMS, "int", f"return sum(1 for a, b in zip(numbers, numbers[1:]) if abs(b - a) > {k})",
                      _one(_ints), 3))
    for k in range(1, 13):
        out.append(_s("count_steps_of", f"Return how many neighbouring numbers differ by exactly {k} (the second "
                      f"minus the first equals {k}).", NUMS, "int",
                      f"return sum(1 for a, b in zip(numbers, numbers[1:]) if b - a == {k})",
                      _one(lambda r, k=k: [r.randint(0, 10) + k * r.randint(0, 3) for _ in range(r.randint(0, 8))]), 3))
        out.append(_s("pair_sums_plus", f"Return the list of sums of neighbouring numbers, each plus {k}.", NUMS,
                      INTS, f"return [a + b + {k} for a, b in zip(numbers, numbers[1:])]", _one(_ints), 3))
    return out


def fam_string_basic() -> list[Spec]:
    g = _one(_mixed)
    out = [_s("shout", "Return the string in upper case.", S, "str", "return s.upper()", g, 1),
           _s("whisper", "Return the string in lower case.", S, "str", "return s.lower()", g, 1),
           _s("flip_case", "Return the string with upper case letters made lower case and lower case letters made "
              "upper case.", S, "str", "return s.swapcase()", g, 1),
           _s("reverse", "Return the string reversed.", S, "str", "return s[::-1]", g, 1),
           _s("reverse_upper", "Return the string reversed and in upper case.", S, "str", "return s[::-1].upper()", g, 1),
           _s("length_plus", "Return the length of the string times two.", S, "int", "return len(s) * 2", g, 1)]
    for k in range(2, 7):
        out.append(_s("repeat", f"Return the string repeated {k} times.", S, "str", f"return s * {k}", g, 1))
        out.append(_s("every_kth", f"Return every {k}-th character of the string, starting with the first.", S,
                      "str", f"return s[::{k}]", g, 2))
    for k in range(1, 8):
        out.append(_s("head", f"Return the first {k} characters of the string (all of it if it is shorter).", S,
                      "str", f"return s[:{k}]", g, 1))
        out.append(_s("tail", f"Return the last {k} characters of the string (all of it if it is shorter).", S,
                      "str", f"return s[-{k}:]", g, 1))
        out.append(_s("drop_head", f"Return the string without its first {k} characters.", S, "str",
                      f"return s[{k}:]", g, 1))
    for word in ("ing", "ed", "er", "s", "ly", "!", "?", "123", "_x", "end"):
        out.append(_s("add_suffix", f"Return the string with {word!r} added at the end.", S, "str",
                      f"return s + {word!r}", g, 1))
        out.append(_s("add_prefix", f"Return the string with {word!r} added at the start.", S, "str",
                      f"return {word!r} + s", g, 1))
    return out


def fam_string_count() -> list[Spec]:
    g = _one(lambda r: _text(r, 1, 3))
    out = [_s("count_vowels", "Return the number of vowels (a, e, i, o, u) in the lower case string.", S, "int",
              "return sum(1 for c in s if c in 'aeiou')", g, 2),
           _s("count_consonants", "Return the number of letters in the lower case string that are not vowels "
              "(a, e, i, o, u).", S, "int", "return sum(1 for c in s if c.isalpha() and c not in 'aeiou')", g, 2),
           _s("count_upper", "Return the number of upper case letters in the string.", S, "int",
              "return sum(1 for c in s if c.isupper())", _one(_mixed), 2),
           _s("count_digits", "Return the number of digits in the string.", S, "int",
              "return sum(1 for c in s if c.isdigit())", _one(_mixed), 2),
           _s("count_spaces", "Return the number of spaces in the string.", S, "int", "return s.count(' ')", g, 1)]
    for c in LETTERS:
        g = _one(lambda r, c=c: _text_with(r, c, "in", 1, 3))
        out.append(_s("count_char", f"Return how many times the letter {c!r} appears in the string.", S, "int",
                      f"return s.count({c!r})", g, 1))
        out.append(_s("count_other", f"Return how many characters of the string are not the letter {c!r}.", S, "int",
                      f"return sum(1 for ch in s if ch != {c!r})", g, 2))
        if c != "z":
            g_after = _one(lambda r, c=c: _text_with(r, chr(ord(c) + 1), "in", 1, 3))
            out.append(_s("count_letters_after", f"Return how many letters of the lower case string come after {c!r} "
                          "in the alphabet.", S, "int", f"return sum(1 for ch in s if 'a' <= ch <= 'z' and ch > {c!r})",
                          g_after, 2))
        if c != "a":
            g_before = _one(lambda r, c=c: _text_with(r, chr(ord(c) - 1), "in", 1, 3))
            out.append(_s("count_letters_before", f"Return how many letters of the lower case string come before "
                          f"{c!r} in the alphabet.", S, "int",
                          f"return sum(1 for ch in s if 'a' <= ch <= 'z' and ch < {c!r})", g_before, 2))
    return out


def fam_string_filter() -> list[Spec]:
    g = _one(lambda r: _text(r, 1, 3))
    out = [_s("remove_vowels", "Return the string with all vowels (a, e, i, o, u) removed.", S, "str",
              "return ''.join(c for c in s if c not in 'aeiou')", g, 2),
           _s("only_digits", "Return only the digits of the string, in order.", S, "str",
              "return ''.join(c for c in s if c.isdigit())", _one(_mixed), 2),
           _s("only_letters", "Return only the letters of the string, in order.", S, "str",
              "return ''.join(c for c in s if c.isalpha())", _one(_mixed), 2),
           _s("remove_spaces", "Return the string with all spaces removed.", S, "str", "return s.replace(' ', '')", g, 1)]
    for c in LETTERS:
        out.append(_s("remove_char", f"Return the string with every {c!r} removed.", S, "str",
                      f"return s.replace({c!r}, '')", g, 1))
    common = "aeioustrnl"
    for a in common:
        for b in "xyz*-":
            out.append(_s("replace_char", f"Return the string with every {a!r} replaced by {b!r}.", S, "str",
                          f"return s.replace({a!r}, {b!r})", g, 1))
    return out


def fam_string_check() -> list[Spec]:
    out = [_s("is_palindrome", "Return True if the string reads the same forwards and backwards.", S, "bool",
              "return s == s[::-1]", _one(lambda r: r.choice(("level", "noon", "abcba", "x", "")) if r.random() < 0.4
                                          else _word(r)), 2),
           _s("all_lower", "Return True if every character of the non-empty string is a lower case letter.", S,
              "bool", "return all('a' <= c <= 'z' for c in s)", _one(lambda r: _mixed(r) or "a"), 2)]
    for c in LETTERS:
        out.append(_s("starts_with", f"Return True if the string starts with the letter {c!r}.", S, "bool",
                      f"return s.startswith({c!r})", _one(lambda r, c=c: c + _word(r) if r.random() < 0.4 else _word(r)), 1))
        out.append(_s("ends_with", f"Return True if the string ends with the letter {c!r}.", S, "bool",
                      f"return s.endswith({c!r})", _one(lambda r, c=c: _word(r) + c if r.random() < 0.4 else _word(r)), 1))
        out.append(_s("has_two", f"Return True if the letter {c!r} appears at least twice in the string.", S, "bool",
                      f"return s.count({c!r}) >= 2", _one(lambda r, c=c: _word(r) + c * r.randint(0, 2)), 2))
    for k in range(1, 12):
        out.append(_s("longer_than", f"Return True if the string has more than {k} characters.", S, "bool",
                      f"return len(s) > {k}", _one(lambda r: "".join(r.choice(LETTERS) for _ in range(r.randint(0, 14)))), 1))
    return out


def fam_string_transform() -> list[Spec]:
    g = _one(lambda r: _text(r, 1, 2))
    out = []
    for k in range(1, 26):
        out.append(_s("shift_letters", f"Shift every lower case letter of the string {k} places forward in the "
                      "alphabet, wrapping around from 'z' to 'a'; keep other characters unchanged.", S, "str",
                      "result = ''\nfor c in s:\n    if 'a' <= c <= 'z':\n"
                      f"        result += chr((ord(c) - ord('a') + {k}) % 26 + ord('a'))\n    else:\n        result += c\n"
                      "return result", g, 3))
    for k in range(1, 26):
        out.append(_s("unshift_letters", f"Shift every lower case letter of the string {k} places back in the "
                      "alphabet, wrapping around from 'a' to 'z'; keep other characters unchanged.", S, "str",
                      "result = ''\nfor c in s:\n    if 'a' <= c <= 'z':\n"
                      f"        result += chr((ord(c) - ord('a') - {k}) % 26 + ord('a'))\n    else:\n        result += c\n"
                      "return result", g, 3))
    for k in range(2, 6):
        out.append(_s("stretch", f"Return the string with every character repeated {k} times.", S, "str",
                      f"return ''.join(c * {k} for c in s)", g, 2))
    for a in "aeiou":
        for b in "aeiou":
            if a < b:
                out.append(_s("swap_letters", f"Return the string with every {a!r} replaced by {b!r} and every {b!r} "
                              f"replaced by {a!r}.", S, "str",
                              f"return ''.join({b!r} if c == {a!r} else {a!r} if c == {b!r} else c for c in s)", g, 3))
    for sep in ("-", "*", " ", ",", ".", "+", "_", "|"):
        out.append(_s("join_chars", f"Return the characters of the string joined by {sep!r}.", S, "str",
                      f"return {sep!r}.join(s)", _one(_word), 2))
    for c in LETTERS:
        out.append(_s("double_char", f"Return the string with every {c!r} doubled.", S, "str",
                      f"return s.replace({c!r}, {c * 2!r})", g, 2))
    out.append(_s("alternate_case", "Return the string with characters at even positions (0, 2, ...) in upper "
                  "case and the others in lower case.", S, "str",
                  "result = ''\nfor i, c in enumerate(s):\n    result += c.upper() if i % 2 == 0 else c.lower()\n"
                  "return result", g, 3))
    return out


def fam_words() -> list[Spec]:
    g = _one(lambda r: _text(r, 1, 6))
    out = [_s("count_words", "Return the number of words in the sentence (words are separated by spaces).", TEXT,
              "int", "return len(sentence.split())", g, 1),
           _s("longest_word", "Return the longest word of the sentence (the first one if there is a tie).", TEXT,
              "str", "return max(sentence.split(), key=len)", g, 2),
           _s("shortest_word", "Return the shortest word of the sentence (the first one if there is a tie).", TEXT,
              "str", "return min(sentence.split(), key=len)", g, 2),
           _s("initials", "Return the first letters of the words of the sentence, joined together.", TEXT, "str",
              "return ''.join(w[0] for w in sentence.split())", g, 2),
           _s("reverse_words", "Return the words of the sentence in reverse order, separated by single spaces.", TEXT,
              "str", "return ' '.join(sentence.split()[::-1])", g, 2),
           _s("capitalize_words", "Return the sentence with the first letter of every word in upper case.", TEXT,
              "str", "return ' '.join(w[0].upper() + w[1:] for w in sentence.split())", g, 2)]
    for k in range(1, 9):
        out.append(_s("count_long_words", f"Return how many words of the sentence have more than {k} letters.", TEXT,
                      "int", f"return sum(1 for w in sentence.split() if len(w) > {k})", g, 2))
        out.append(_s("long_words", f"Return the list of words of the sentence that have more than {k} letters.",
                      TEXT, STRS, f"return [w for w in sentence.split() if len(w) > {k}]", g, 2))
    for c in LETTERS:
        g_start, g_end, g_in = (_one(lambda r, c=c, where=where: _text_with(r, c, where, 1, 6))
                                for where in ("start", "end", "in"))
        out.append(_s("words_starting_with", f"Return the list of words of the sentence that start with {c!r}.", TEXT,
                      STRS, f"return [w for w in sentence.split() if w.startswith({c!r})]", g_start, 2))
        out.append(_s("words_containing", f"Return the list of words of the sentence that contain {c!r}.", TEXT,
                      STRS, f"return [w for w in sentence.split() if {c!r} in w]", g_in, 2))
        out.append(_s("count_words_containing", f"Return how many words of the sentence contain {c!r}.", TEXT, "int",
                      f"return sum(1 for w in sentence.split() if {c!r} in w)", g_in, 2))
        out.append(_s("count_words_ending_with", f"Return how many words of the sentence end with {c!r}.", TEXT, "int",
                      f"return sum(1 for w in sentence.split() if w.endswith({c!r}))", g_end, 2))
    for sep in ("-", ",", "_", "+", "/"):
        out.append(_s("join_words", f"Return the words of the sentence joined by {sep!r} instead of spaces.", TEXT,
                      "str", f"return {sep!r}.join(sentence.split())", g, 1))
    return out


def fam_dict_ops() -> list[Spec]:
    g = _one(_dict)
    out = [_s("sum_values", "Return the sum of the values of the dictionary.", D, "int", "return sum(d.values())", g, 1),
           _s("key_of_max", "Return the key with the largest value in the non-empty dictionary (the first such key).",
              D, "str", "return max(d, key=d.get)", g, 2),
           _s("sorted_keys", "Return the keys of the dictionary in alphabetical order.", D, STRS, "return sorted(d)", g, 1)]
    for k in range(0, 16):
        out.append(_s("count_values_above", f"Return how many values of the dictionary are greater than {k}.", D,
                      "int", f"return sum(1 for v in d.values() if v > {k})", g, 2))
        out.append(_s("keys_above", f"Return the sorted list of keys whose value is greater than {k}.", D, STRS,
                      f"return sorted(key for key, v in d.items() if v > {k})", g, 2))
    for k in range(0, 16):
        out.append(_s("sum_values_above", f"Return the sum of the values of the dictionary that are greater than {k}.",
                      D, "int", f"return sum(v for v in d.values() if v > {k})", g, 2))
        out.append(_s("sum_values_below", f"Return the sum of the values of the dictionary that are smaller than {k}.",
                      D, "int", f"return sum(v for v in d.values() if v < {k})", g, 2))
    for key in ("a", "x", "red", "one", "cat"):
        for default in (0, -1, 10):
            out.append(_s("lookup", f"Return the value for the key {key!r}, or {default} if the key is missing.", D,
                          "int", f"return d.get({key!r}, {default})",
                          _one(lambda r, key=key: {**_dict(r), **({key: r.randint(-5, 20)} if r.random() < 0.5 else {})}), 1))
    for k in range(2, 11):
        out.append(_s("scale_values", f"Return a new dictionary with the same keys and every value multiplied by {k}.",
                      D, DICT, f"return {{key: v * {k} for key, v in d.items()}}", g, 2))
        out.append(_s("drop_small", f"Return a new dictionary without the entries whose value is smaller than {k}.",
                      D, DICT, f"return {{key: v for key, v in d.items() if v >= {k}}}", g, 2))
    return out


def fam_dict_build() -> list[Spec]:
    out = [_s("letter_counts", "Return a dictionary mapping each character of the string to how many times it "
              "appears.", S, "Dict[str, int]",
              "counts = {}\nfor c in s:\n    counts[c] = counts.get(c, 0) + 1\nreturn counts", _one(_word), 3),
           _s("word_lengths", "Return a dictionary mapping each word of the sentence to its length.", TEXT,
              "Dict[str, int]", "return {w: len(w) for w in sentence.split()}", _one(lambda r: _text(r, 1, 5)), 2),
           _s("number_counts", "Return a dictionary mapping each number of the list to how many times it appears.",
              NUMS, "Dict[int, int]", "counts = {}\nfor x in numbers:\n    counts[x] = counts.get(x, 0) + 1\n"
              "return counts", _one(lambda r: _ints(r, 0, 5)), 3),
           _s("first_letter_groups", "Return a dictionary mapping each first letter to the list of words of the "
              "sentence that start with it, in order.", TEXT, "Dict[str, List[str]]",
              "groups = {}\nfor w in sentence.split():\n    groups.setdefault(w[0], []).append(w)\nreturn groups",
              _one(lambda r: _text(r, 1, 6)), 3)]
    for k in range(2, 16):
        out.append(_s("times_table", f"Return a dictionary mapping each number of the list to that number times {k}.",
                      NUMS, "Dict[int, int]", f"return {{x: x * {k} for x in numbers}}", _one(_ints), 2))
        out.append(_s("plus_table", f"Return a dictionary mapping each number of the list to that number plus {k}.",
                      NUMS, "Dict[int, int]", f"return {{x: x + {k} for x in numbers}}", _one(_ints), 2))
        out.append(_s("remainder_table", f"Return a dictionary mapping each number of the list to its remainder "
                      f"modulo {k}.", NUMS, "Dict[int, int]", f"return {{x: x % {k} for x in numbers}}", _one(_ints), 2))
    return out


def fam_loops() -> list[Spec]:
    g = _one(lambda r: r.randint(0, 60))
    out = [_s("factorial", "Return the factorial of the non-negative integer n.", N, "int",
              "result = 1\nfor i in range(2, n + 1):\n    result *= i\nreturn result", _one(lambda r: r.randint(0, 12)), 3),
           _s("sum_of_squares_to", "Return the sum of the squares of the integers from 1 to n.", N, "int",
              "return sum(i * i for i in range(1, n + 1))", g, 2),
           _s("sum_of_odds", "Return the sum of the first n odd numbers.", N, "int",
              "return sum(2 * i + 1 for i in range(n))", g, 2),
           _s("collatz_steps", "Return how many steps the Collatz process takes to reach 1 from the positive integer n "
              "(halve n if it is even, else replace it by 3 * n + 1).", N, "int",
              "steps = 0\nwhile n != 1:\n    n = n // 2 if n % 2 == 0 else 3 * n + 1\n    steps += 1\nreturn steps",
              _one(lambda r: r.randint(1, 40)), 3)]
    for k in range(2, 16):
        out.append(_s("sum_multiples_to", f"Return the sum of the integers from 1 to n that are divisible by {k}.", N,
                      "int", f"return sum(i for i in range(1, n + 1) if i % {k} == 0)", g, 2))
        out.append(_s("count_multiples_below", f"Return how many integers from 1 to n - 1 are divisible by {k}.", N,
                      "int", f"return sum(1 for i in range(1, n) if i % {k} == 0)", g, 2))
    for k in range(2, 10):
        out.append(_s("times_divisible", f"Return how many times the positive integer n can be divided by {k} without "
                      "a remainder.", N, "int", f"count = 0\nwhile n % {k} == 0:\n    n //= {k}\n    count += 1\nreturn count",
                      _one(lambda r, k=k: k ** r.randint(0, 4) * r.choice((1, 1, 2, 3, 5, 7))), 3))
        out.append(_s("power_above", f"Return the smallest power of {k} (1, {k}, {k * k}, ...) that is greater than "
                      "n.", N, "int", f"p = 1\nwhile p <= n:\n    p *= {k}\nreturn p", _one(lambda r: r.randint(0, 500)), 3))
        out.append(_s("digit_sum_multiples", f"Return how many integers from 1 to n have a digit sum divisible by {k}.",
                      N, "int", f"return sum(1 for i in range(1, n + 1) if sum(int(c) for c in str(i)) % {k} == 0)",
                      _one(lambda r: r.randint(1, 80)), 3))
    for k in range(2, 31):
        out.append(_s("gcd_with", f"Return the greatest common divisor of the positive integer n and {k}.", N, "int",
                      f"a, b = n, {k}\nwhile b:\n    a, b = b, a % b\nreturn a",
                      _one(lambda r, k=k: r.choice([d for d in range(2, k + 1) if k % d == 0]) * r.randint(1, 12)
                           if r.random() < 0.6 else r.randint(1, 200)), 3))
    for a in range(2, 10):
        for b in range(a + 1, 11):
            if b % a:
                out.append(_s("count_either_multiples", f"Return how many integers from 1 to n are divisible by {a} "
                              f"or by {b}.", N, "int",
                              f"return sum(1 for i in range(1, n + 1) if i % {a} == 0 or i % {b} == 0)", g, 3))
    for k in range(1, 11):
        out.append(_s("triangle_plus", f"Return the sum of the integers from 1 to n, plus {k}.", N, "int",
                      f"return n * (n + 1) // 2 + {k}", g, 2))
    return out


def fam_sequences() -> list[Spec]:
    out = []
    g = _one(lambda r: r.randint(0, 9))
    for a in range(0, 10):
        for d in range(1, 10):
            out.append(_s("arithmetic_terms", f"Return the first n terms of the sequence that starts at {a} and grows "
                          f"by {d} each step.", N, INTS, f"return [{a} + {d} * i for i in range(n)]", g, 2))
    for a in range(0, 10):
        for d in range(1, 10):
            out.append(_s("arithmetic_sum", f"Return the sum of the first n terms of the sequence that starts at {a} "
                          f"and grows by {d} each step.", N, "int",
                          f"total = 0\nterm = {a}\nfor _ in range(n):\n    total += term\n    term += {d}\nreturn total",
                          g, 3))
    for k in range(0, 21):
        out.append(_s("squares_plus", f"Return the list of the squares of 1, 2, ..., n, each plus {k}.", N, INTS,
                      f"return [i * i + {k} for i in range(1, n + 1)]", g, 2))
    for m in (2, 3, 4):
        for a in range(1, 6):
            out.append(_s("geometric_term", f"Return the n-th term (counting from 0) of the sequence that starts at "
                          f"{a} and is multiplied by {m} each step.", N, "int", f"return {a} * {m} ** n", g, 2))
    for a in range(0, 6):
        for b in range(1, 6):
            out.append(_s("fibonacci_like", f"Return the n-th number (counting from 0) of the sequence that starts "
                          f"with {a}, {b} and where every next number is the sum of the two before it.", N, "int",
                          f"x, y = {a}, {b}\nfor _ in range(n):\n    x, y = y, x + y\nreturn x",
                          _one(lambda r: r.randint(0, 15)), 3))
    for k in range(2, 21):
        out.append(_s("first_multiples", f"Return the list of the first n positive multiples of {k}.", N, INTS,
                      f"return [{k} * i for i in range(1, n + 1)]", g, 2))
    return out


def fam_conditionals() -> list[Spec]:
    out = []
    for a in range(2, 8):
        for b in range(2, 8):
            if a == b or b % a == 0 or a % b == 0:
                continue
            out.append(_s("fizz_buzz", f"Return 'Fizz' if n is divisible by {a}, 'Buzz' if it is divisible by {b}, "
                          f"'FizzBuzz' if it is divisible by both, otherwise n as a string.", N, "str",
                          f"if n % {a * b} == 0:\n    return 'FizzBuzz'\nif n % {a} == 0:\n    return 'Fizz'\n"
                          f"if n % {b} == 0:\n    return 'Buzz'\nreturn str(n)",
                          _one(lambda r, a=a, b=b: r.choice((a, b, a * b, 1)) * r.randint(1, 6) + r.choice((0, 0, 1))), 2))
    for lo in range(0, 30, 5):
        for w in (5, 10, 20):
            hi = lo + w
            out.append(_s("clamp", f"Return n limited to the range from {lo} to {hi}: {lo} if n is smaller, {hi} if "
                          "it is larger, otherwise n.", N, "int",
                          f"if n < {lo}:\n    return {lo}\nif n > {hi}:\n    return {hi}\nreturn n",
                          _one(lambda r, lo=lo, hi=hi: r.randint(lo - 10, hi + 10)), 2))
    for k in range(40, 85, 5):
        out.append(_s("pass_fail", f"Return 'pass' if the score is at least {k}, otherwise 'fail'.", (("score", "int"),),
                      "str", f"return 'pass' if score >= {k} else 'fail'", _one(lambda r, k=k: r.randint(k - 15, k + 15)), 2))
    for a in range(5, 30, 5):
        for b in range(a + 5, a + 30, 5):
            out.append(_s("size_label", f"Return 'small' if n is smaller than {a}, 'medium' if it is smaller than {b}, "
                          "otherwise 'large'.", N, "str",
                          f"if n < {a}:\n    return 'small'\nif n < {b}:\n    return 'medium'\nreturn 'large'",
                          _one(lambda r, a=a, b=b: r.randint(a - 10, b + 10)), 2))
    for a in range(2, 6):
        for b in range(1, 6):
            out.append(_s("collatz_like", f"Return n integer-divided by 2 if n is even, otherwise {a} * n + {b}.", N,
                          "int", f"if n % 2 == 0:\n    return n // 2\nreturn {a} * n + {b}",
                          _one(lambda r: r.randint(-20, 60)), 2))
    for a in range(1, 11):
        for b in range(1, 11):
            out.append(_s("nudge", f"Return n plus {a} if n is positive, otherwise n minus {b}.", N, "int",
                          f"if n > 0:\n    return n + {a}\nreturn n - {b}", _one(lambda r: r.randint(-20, 20)), 2))
    out.append(_s("sign_word", "Return 'positive', 'negative' or 'zero' depending on the sign of n.", N, "str",
                  "if n > 0:\n    return 'positive'\nif n < 0:\n    return 'negative'\nreturn 'zero'",
                  _one(lambda r: r.choice((0, r.randint(-9, 9)))), 2))
    return out


FAMILIES: dict[str, Callable[[], list[Spec]]] = {
    "arithmetic": fam_arithmetic, "two_numbers": fam_two_numbers, "number_check": fam_number_check,
    "digits": fam_digits, "list_reduce": fam_list_reduce, "list_count": fam_list_count,
    "list_filter": fam_list_filter, "list_index": fam_list_index, "list_map": fam_list_map,
    "list_pairs": fam_list_pairs, "string_basic": fam_string_basic, "string_count": fam_string_count,
    "string_filter": fam_string_filter, "string_check": fam_string_check,
    "string_transform": fam_string_transform, "words": fam_words, "dict_ops": fam_dict_ops,
    "dict_build": fam_dict_build, "loops": fam_loops, "sequences": fam_sequences, "conditionals": fam_conditionals,
}

# -------------------------------------------------------------------------------------------
# Problems


def _rank(key: str) -> int:
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 100


def split_v1(task_id: str) -> str:
    """The first split, by task_id: instances of one template fell on both sides (kept for old runs)."""
    return "test" if _rank(task_id) < V1_TEST_PERCENT else "train"


def test_templates(templates_by_family: dict[str, set[str]]) -> set[str]:
    """The held-out templates: those whose hash rank falls under the test fraction, and in a family
    where none does, its lowest-ranked one, so every family is tested. By template hash, so adding
    families or constants never moves a template."""
    held = set()
    for templates in templates_by_family.values():
        chosen = {t for t in templates if _rank(t) < TEST_FRACTION_PERCENT}
        held |= chosen or {min(templates, key=_rank)}
    return held


def _signature(spec: Spec) -> str:
    args = ", ".join(f"{name}: {ann}" for name, ann in spec.args)
    return f"def {spec.name}({args}) -> {spec.ret}:"


def _call(name: str, args: tuple) -> str:
    return f"{name}({', '.join(repr(a) for a in args)})"


def _imports(spec: Spec) -> str:
    text = " ".join(ann for _, ann in spec.args) + " " + spec.ret
    names = [n for n in ("Dict", "List") if n + "[" in text]
    return f"from typing import {', '.join(names)}\n\n\n" if names else ""


def _wrap(text: str, width: int = 88) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width) or [""]


def _draw_cases(spec: Spec, fn: Callable[..., Any], rng: random.Random, n: int) -> list[tuple[tuple, Any]]:
    """n distinct input tuples with their outputs; prefer sets whose outputs are not all the same."""
    best: list[tuple[tuple, Any]] = []
    for _attempt in range(8):
        cases: list[tuple[tuple, Any]] = []
        seen: set[str] = set()
        for _ in range(n * 6):
            args = spec.gen(rng)
            key = repr(args)
            if key in seen:
                continue
            seen.add(key)
            cases.append((args, fn(*_copy(args))))
            if len(cases) == n:
                break
        if len({repr(out) for _, out in cases}) > 1 or len(cases) < 2:
            return cases
        best = best or cases
    return best


def _copy(args: tuple) -> tuple:
    return tuple(list(a) if isinstance(a, list) else dict(a) if isinstance(a, dict) else a for a in args)


def build_problem(family: str, k: int, spec: Spec) -> Problem:
    task_id = f"easy/{family}/{k}"
    rng = random.Random(task_id)
    namespace: dict[str, Any] = {}
    code = _imports(spec) + _signature(spec) + "\n" + spec.body
    exec(compile(code, task_id, "exec"), namespace)  # our own template code, not user input
    fn = namespace[spec.name]
    n_hidden = rng.randint(3, 6)
    cases = _draw_cases(spec, fn, rng, N_EXAMPLES + n_hidden)
    examples, hidden = cases[:N_EXAMPLES], cases[N_EXAMPLES:]
    doc = ['    """ ' + line if i == 0 else "    " + line for i, line in enumerate(_wrap(spec.doc))]
    for args, out in examples:
        doc += [f"    >>> {_call(spec.name, args)}", f"    {out!r}"]
    prompt = _imports(spec) + _signature(spec) + "\n" + "\n".join(doc) + '\n    """\n'
    test = "\n\ndef check(candidate):\n" + "".join(
        f"    assert {_call('candidate', args)} == {out!r}\n" for args, out in cases)
    template = template_key(spec.body)
    return Problem(task_id=task_id, prompt=prompt, entry_point=spec.name, description=spec.doc, test=test,
                   canonical_solution=spec.body, source="easy",
                   meta={"split": "", "split_v1": split_v1(task_id), "template": template,
                         "family": family, "difficulty": spec.level,
                         "test_format": "check", "examples": len(examples), "hidden_tests": len(hidden)})


def _specs() -> Iterator[tuple[str, int, Spec]]:
    for family, make in FAMILIES.items():
        for k, spec in enumerate(make()):
            yield family, k, spec


@lru_cache(maxsize=1)
def _all_problems() -> tuple[Problem, ...]:
    per_family: dict[str, list[Problem]] = {}
    for family, k, spec in _specs():
        per_family.setdefault(family, []).append(build_problem(family, k, spec))
    held = test_templates({f: {p.meta["template"] for p in ps} for f, ps in per_family.items()})
    for ps in per_family.values():
        for p in ps:
            p.meta["split"] = "test" if p.meta["template"] in held else "train"
    # Round-robin over families so that the first N problems (--limit) cover every family.
    ordered = []
    longest = max(len(v) for v in per_family.values())
    for i in range(longest):
        for family in FAMILIES:
            if i < len(per_family[family]):
                ordered.append(per_family[family][i])
    return tuple(ordered)


def load_easy(source: str | None = None, split: str | None = None) -> list[Problem]:
    """All easy problems (copies, so callers may modify them), optionally one split.

    `source` may name families to keep, comma-separated (``easy:list_count,words``).
    """
    problems = _all_problems()
    if source:
        wanted = [f.strip() for f in source.split(",") if f.strip()]
        unknown = [f for f in wanted if f not in FAMILIES]
        if unknown:
            from codeloop.errors import UserError

            raise UserError(f"unknown easy families {', '.join(unknown)} (known: {', '.join(FAMILIES)})", "--problems")
        problems = tuple(p for p in problems if p.meta["family"] in wanted)
    key, want = ("split_v1", split[:-3]) if split and split.endswith("-v1") else ("split", split)
    return [dataclasses.replace(p, meta=dict(p.meta), io_tests=[]) for p in problems
            if want is None or p.meta[key] == want]


register(ProblemSet("easy", f"built-in seeded easy HumanEval-style problems, {len(FAMILIES)} families; train/test "
                    "hold out whole templates (train-v1/test-v1: the first split); easy:FAMILY,... keeps some "
                    "families", load_easy, splits=SPLITS))
