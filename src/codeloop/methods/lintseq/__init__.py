"""LintSeq: programs as sequences of linter-clean insertion edits.

Piterbarg et al., "Training LMs on Synthetic Edit Sequences Improves Code Synthesis" (ICLR 2025).

Algorithm (backward sampling, then reversal), per program and per sequence:

1. Sampleable lines: every line with code on it (blank lines and comment lines are never sampled;
   of a multi-line UPPER_CASE = ( ... ) / [ ... ] global definition only the first line is).
   Weight of a line = its indentation / the program's first indentation width (1 at top level),
   so deeper lines are deleted first more often.
2. Repeat until no sampleable line is left: sample one line, delete it with its indented children,
   lint the state, delete every flagged line (with its children), lint again, ... until clean.
3. Reverse the states (empty -> full program) and diff consecutive states: zero-context unified
   diff hunks without file headers, insertion-only by construction.

Training text: instruction + "\\n<|diff|>".join([""] + edits + ["", ""]) (loss on the diffs).
Decoding: a generated `<|diff|>`-separated completion is resolved back into a program.

edits.py holds the edit format (diffs, resolving, decoding generated text, the training text);
sampling.py the algorithm (backward sampling, verification, the process pool); prompts.py what the
model is asked and answers (the task in words + signature -> the response program; the same prompt
text and tokens at training and test time; code prompt + decoded program executed); report.py and
plots.py the paper's comparison of a LintSeq arm with a plain arm.

Beyond the paper: a fast linter with pylint's verdicts (codeloop.linting), a process pool that is
deterministic per (seed, record index, sequence index), and every sequence verified (every state
before the full program lints clean, every hunk is an insertion, resolving the edits rebuilds
the program exactly); failures are counted and returned, never dropped silently.

Documented handling of inputs:
- Programs are canonicalised first: CRLF -> LF, leading and trailing blank lines removed (the
  final newline is not represented). `resolve(edits) == canonical_program(program)`.
- A ```python fenced block in the field (chat responses) is extracted, as in the official code.
- Input that does not parse is rejected with the syntax error (reason `invalid_input`).
- Input that parses but has lint errors (e.g. an import pylint cannot resolve) is kept, as in the
  official code: its flagged lines vanish from every intermediate state and come back in the last
  edit; `stats.programs_not_clean` counts them.
- Indentation: `indent="auto"` (default) lints each program with its own indentation unit, so tab
  or two-space programs are not flattened; `indent="official"` uses pylint's four spaces, as the
  official code does (every indented line of a tab program is then bad-indentation).
"""

from codeloop.methods.lintseq.edits import (DIFF_TOKEN, SEPARATOR, STOP_SEQUENCE, Decoded, Hunk, apply_edit,
                                            completion_text, decode_generated, decode_generated_detail,
                                            insertion_diff, parse_hunks, resolve,
                                            sft_records_from_edits, sft_records_plain, split_edits, training_text)
from codeloop.methods.lintseq.prompts import (InstructionPrompts, arm_prompt, decode_sample, boundary_mismatch, problem_instruction,
                                              prompt_context, response_program, signature_of, strip_docstrings,
                                              task_instruction)
from codeloop.methods.lintseq.sampling import (PROGRAM_FIELDS, LintSeqOptions, LintSeqStats, SequenceError,
                                               canonical_program, choose_field, edits_from_states, extract_code,
                                               line_indents, line_weights, linter_for, string_continuations, lintseq_program,
                                               lintseq_records, program_of, sample_states, sampleable_lines,
                                               sequence_rng, verify_sequence)

__all__ = ["DIFF_TOKEN", "Decoded", "Hunk", "InstructionPrompts", "LintSeqOptions", "LintSeqStats", "PROGRAM_FIELDS", "SEPARATOR",
           "STOP_SEQUENCE", "SequenceError", "apply_edit", "canonical_program", "choose_field",
           "completion_text", "decode_generated", "decode_generated_detail", "decode_sample",
           "edits_from_states", "extract_code", "insertion_diff", "line_indents", "line_weights", "linter_for",
           "lintseq_program", "lintseq_records", "parse_hunks", "program_of", "resolve", "sample_states",
           "sampleable_lines", "sequence_rng", "sft_records_from_edits", "sft_records_plain", "split_edits",
           "training_text", "verify_sequence", "arm_prompt", "boundary_mismatch", "problem_instruction",
           "prompt_context", "response_program", "signature_of", "strip_docstrings", "task_instruction",
           "string_continuations"]
