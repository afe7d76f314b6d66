"""trainfix: training-instability triage for PyTorch.

Read the run directory you already have, say what went wrong with the numbers behind it, apply the
matching fix, retrain and diagnose again.  Subpackages: ``diagnostics`` (reading logs, detectors,
reports; never imports torch at module level), ``fixes`` (recipes that patch configs or repair
artifacts), ``trainers`` (a config-driven PyTorch trainer), ``cli`` (the ``trainfix`` command).
"""

__version__ = "0.1.0"
