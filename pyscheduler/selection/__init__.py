"""Node selection: the reference (legacy) scheduler and, later, the compiled fast path."""
