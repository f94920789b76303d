"""Values and rules: the data model, configs, languages, flags, events, errors, hashes.

The bottom layer: imports nothing from the package but :mod:`pyscheduler._compat`.
"""
