"""Shared test configuration: hypothesis profiles and the strategies module.

``tests/`` is put on ``sys.path`` so that test modules can write
``from strategies import butterflies`` (pytest runs with
``--import-mode=importlib``, which does not do it).

Hypothesis runs 40 examples per test by default; set the environment
variable ``SKBUTTERFLY_HYPOTHESIS_PROFILE=thorough`` for 500.
"""

import os
import sys
from pathlib import Path

from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).parent))

# The machines running the suite are shared: no per-example deadline.
settings.register_profile(
    "default",
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough", parent=settings.get_profile("default"), max_examples=500
)
settings.load_profile(os.environ.get("SKBUTTERFLY_HYPOTHESIS_PROFILE", "default"))
