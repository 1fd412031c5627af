"""The command lines, the top floor: one thin module per command, holding its parser and a short
``main`` that calls the library below (``run``, ``tuning``, ``benchmarking``).

``python -m cartpole_dqn.<command>`` and ``cartpole-dqn <command>`` run them; nothing in the
package imports this floor except those entry points.
"""
