"""Mutable registry state: nodes, fleet, pools, loads, reservations, sessions,
management, and the instrumented locks and metrics that guard and count them.

Imports from :mod:`pyscheduler.domain` only.
"""
