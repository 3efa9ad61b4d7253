"""Benchmarks: LFW accuracy (lfw_accuracy.py) and per-frame speed (speed.py).

Run them as scripts from the repository root, e.g.
``.venv/bin/python benchmarks/lfw_accuracy.py --help``. The pure LFW maths in
lfw_protocol.py is importable by tests without doing any work.
"""
