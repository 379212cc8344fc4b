"""Pure: the Job of a run (name, body) and what a Job says about its run (state, pruning)."""
