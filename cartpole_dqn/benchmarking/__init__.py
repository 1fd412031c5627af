"""Benchmark tooling: statistics over seeds, the Markdown table and the plots of ``benchmark``."""
