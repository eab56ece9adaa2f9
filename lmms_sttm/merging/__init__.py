"""STTM merging core and the shared Reduction plan type (pure torch)."""
