"""GiFT: Gibbs fine-tuning for code generation (code <-> description), perplexity-weighted resampling.

Source: "GiFT: Gibbs Fine-Tuning for Code Generation" (ACL 2025); official code Alex-HaochenLi/GiFT
(read for its facts; nothing is copied). The algorithm, as chain.py runs it:

    seeds: problems with a description d0, a reference solution c_ref (its imports + signature
           frame the code prompt) and tests. The model p is FROZEN while the chains run.
    state per problem: (d, c) <- (d0, c_ref);  last <- c_ref
    for t in 0 .. iters-1:                                   # one generation call per round,
        codes   <- num_seq samples ~ p(code | prompt(d_t)), T   # batched across problems
        results <- execute(codes, tests)                      # sandbox
        c_{t+1} <- one passing code, drawn at random            # the chain's state
                   none passes: `no_pass` decides (below)
        ppl     <- exp(mean NLL of c_{t+1}'s body + EOS | prompt(d_t))   # conditioned on its description
        d_{t+1} <- ~ p(description | 1-shot summary prompt, c_{t+1}), T_sum, top-p 0.95
    resample per problem k codes from its kept codes c_1..c_T:
        ppl-softmax:       p_i ∝ exp(T_r * PPL_i), with replacement   (T_r = 2: favours the high-perplexity tail)
        uniform:           p_i = 1/n, k distinct codes when n >= k (the official code's random.sample)
        conditional-only:  uniform over the codes sampled from the ORIGINAL description (round 0)
    training set (train_set): the seed problems with their reference solutions + the resampled
        codes (the official code's data.extend(data1)), or the resampled codes only;
        pairs: (prompt of the ORIGINAL description, code); SFT puts the loss on the code only.

No passing code in a round (`no_pass`). The published code silently falls back to the reference
solution (its back-up list re-reads the current round's empty file). Here the behaviour is named:

- ``keep-last`` (default): continue from the last passing state: summarise the most recent kept
  code again (the reference before any code has passed) into a fresh description.
- ``restart-reference``: summarise the reference solution (the published behaviour).
- ``stop``: the problem's chain ends; its codes kept so far still count.

Prompt templates (exact text; ``{...}`` are filled in):

- Code prompt for a function problem: the reference frame (everything in the problem's prompt
  before the tested function's docstring: imports, helpers, the ``def`` line) followed by the
  description as that function's docstring::

      {frame}    \"\"\"
          {description}
          \"\"\"

  In round 0 the description is the original one and the prompt is the problem's own prompt,
  verbatim (the prompt evaluation uses). For a stdin/stdout problem the prompt is the description
  as a module docstring (``\"\"\"\\n{description}\\n\"\"\"\\n``), the format of the APPS loader.
- Summary prompt (1-shot; the shot is another seed problem's reference code and description,
  drawn at random as in the official code, or a built-in example)::

      ### Code:
      {shot code}
      ### Description of the code above:
      {shot description}

      ### Code:
      {code}
      ### Description of the code above:

  The code shown is the program without the task docstring (frame + body), so the description
  is not simply copied. The summary stops at the next ``\\n###`` and is stripped.

Instruction prompts (``prompt_format: instruction``, for instruct models): the code prompt above is
asked for in words through the chat template (``generation.prompts``) and the answer is a code
block. The perplexity is of the answer given that rendered prompt; the summariser sees the
answer's program without docstrings; a training record is the rendered prompt of the original
description and the answer without docstrings (as the official code strips them) with its fence
closed. The summary is asked through the chat template as well, the 1-shot example as an earlier
user/assistant exchange (prompts.summary_messages): a 0.5B instruct model given the plain text
mostly described the shot's program instead.

chain.py holds no sampling, sandbox, scoring or training mechanics: it calls the layers below.
prompts.py holds the templates above; plots.py the figures and the rounds table.
"""

from codeloop.methods.gift.chain import (NO_PASS, SHOTS, TRAIN_SETS, WEIGHTINGS, ChainState, GiFTConfig, Scorer,
                                         chain_summary, description_drift, freeze, gibbs_round, gift, gold_records,
                                         judged_problem, kept_codes, model_scorer, ppl_softmax, resample,
                                         resample_weights, resampling_stats, round_stats, run_chains, self_training,
                                         training_set)
from codeloop.methods.gift.plots import (PPL_PNG, RESAMPLING_PNG, ROUNDS_MD, ROUNDS_PNG, plot_chain, rounds_table,
                                         write_rounds_table)
from codeloop.methods.gift.prompts import (BUILTIN_SHOT, SUMMARY_ASK, SUMMARY_HEADER, SUMMARY_STOPS, code_frame,
                                           code_prompt, has_reference, original_description, pick_shot,
                                           summary_code, summary_prompt)

__all__ = ["NO_PASS", "SHOTS", "TRAIN_SETS", "WEIGHTINGS", "ChainState", "GiFTConfig", "Scorer", "chain_summary",
           "description_drift", "freeze", "gibbs_round", "gift", "gold_records", "judged_problem", "kept_codes",
           "model_scorer", "ppl_softmax", "resample", "resample_weights", "resampling_stats", "round_stats",
           "run_chains", "self_training", "training_set",
           "PPL_PNG", "RESAMPLING_PNG", "ROUNDS_MD", "ROUNDS_PNG", "plot_chain", "rounds_table", "write_rounds_table", "BUILTIN_SHOT", "SUMMARY_ASK", "SUMMARY_HEADER", "SUMMARY_STOPS",
           "code_frame", "code_prompt", "has_reference", "original_description", "pick_shot", "summary_code",
           "summary_prompt"]
