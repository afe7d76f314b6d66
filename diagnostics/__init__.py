"""Reading training logs and judging them.

Data flows one way: ``ingest`` turns a run directory into a :class:`~trainfix.diagnostics.run.Run`
(a long table of scalars plus config and checkpoint references), ``engine`` runs the detectors listed
in ``detectors`` over it and returns a :class:`~trainfix.diagnostics.report.Report`, and the report's
renderers print it.  Nothing here imports torch at module level: reading logs must stay light.
"""
