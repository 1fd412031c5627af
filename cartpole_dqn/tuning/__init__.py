"""Optuna tooling: trials that are ordinary training runs (``sweep``), pruned through the solve
protocol (``pruning``), over a search space (``space``), scored by ``objective``, stored on a journal
file or PostgreSQL (``studies``), and reported (``report``)."""
