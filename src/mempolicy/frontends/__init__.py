"""Command-line front ends run as ``mempolicy NAME ARGS``: compatible tools
(``numactl``, ``numastat``) and the model's own views."""
