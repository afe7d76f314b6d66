"""Fix recipes: a Finding becomes a minimal, validated config patch or a repaired artifact.

``recipes`` holds one file per recipe and the one table of them; ``patch`` applies a list of edits
to a config tree, shows the diff and records provenance.  Depends on ``trainfix.diagnostics`` (the
finding types, the config knobs) and on ``trainfix.trainers.config`` (schema validation only).
"""
