"""Vocabularies shared by the functions, the estimators and the command line.

Layer 1: plain data, imported by every layer that validates these names.
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

# Orders of the splits of the hierarchical factorization (besides explicit ones).
TREES = ("balanced", "left", "right")
# What to do with a shape that the architecture cannot split.
PADDINGS = ("zeros", "raise")
# Routes of the fixed-support factorization.
FSMF_METHODS = ("auto", "exact", "als")
