"""Sanctions: the ladder (policy), the ledger (store), a pure enforcement planner and its verified executor."""
