"""Tools built on the library: the CLI, simulation, benchmarks, workloads, fleet files.

Nothing in the library imports from here.
"""
