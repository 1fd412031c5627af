"""The solve protocol and a run's artifacts: what makes this package's figures trustworthy.

Evaluation (``evaluation``), the protocol as an SB3 callback (``solve``), checkpoints and resume
(``checkpoints``), one run end to end (``runner``) and what it leaves behind (``results``,
``artifacts``, ``models``). The README states the definitions they implement.
"""
