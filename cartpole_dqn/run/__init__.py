"""The solve protocol and a run's artifacts: what makes this package's figures trustworthy.

Evaluation (``evaluation``, ``envs``, ``vec_env``), the protocol as an SB3 callback (``solve``),
checkpoints, resume and Ctrl-C (``checkpoints``, ``interrupt``), a config made an agent
(``factory``, ``devices``), one run end to end (``runner``, ``progress_bar``, ``verdict``) and what
it leaves behind (``results``, ``artifacts``, ``models``); many runs in worker processes
(``multiseed``, ``children``) and what the benchmark and the tuner share about them (``stats``,
``clock``). The README states the definitions they implement; docs/solve-protocol.md in full.
"""
