"""The immutable side dispatch reads: the language index and the runtime snapshot.

Imports from :mod:`pyscheduler.state` and :mod:`pyscheduler.domain`.
"""
