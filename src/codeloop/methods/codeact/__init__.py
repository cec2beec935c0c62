"""CodeACT (arXiv 2408.02193): CDAS data selection (cdas.py: complexity- and diversity-aware, the
algorithm box; pairs.py: the trained (instruction, response) pair it scores; io.py: records in and
out; plots.py: figures). Its other half, Dynamic Pack, is a batch layout and lives with training
(codeloop.training.packing, packing="codeact")."""

from codeloop.methods.codeact.cdas import (METHODS, ROUNDING, TEMPLATES, CDASConfig, Clustering, Selection,
                                           cluster_embeddings, describe, is_failed_score, keep_count, score_ifd,
                                           select_random, select_records, select_top_per_cluster)
from codeloop.methods.codeact.io import (FIELD_PAIRS, InstructionData, SelectionResult, check_records, detect_fields,
                                         read_instruction_jsonl, stats_path_for, write_selection)
from codeloop.methods.codeact.pairs import TRAINED_TEMPLATE, TrainedPair, trained_pair
from codeloop.methods.codeact.plots import plot_clusters, plot_ifd_histogram

__all__ = ["METHODS", "ROUNDING", "TEMPLATES", "CDASConfig", "Clustering", "Selection", "cluster_embeddings",
           "describe", "is_failed_score", "keep_count", "score_ifd", "select_random", "select_records",
           "select_top_per_cluster", "FIELD_PAIRS", "InstructionData", "SelectionResult", "check_records",
           "detect_fields", "read_instruction_jsonl", "stats_path_for", "write_selection", "TRAINED_TEMPLATE",
           "TrainedPair", "trained_pair", "plot_clusters", "plot_ifd_histogram"]
