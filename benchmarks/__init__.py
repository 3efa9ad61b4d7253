"""Benchmarks: LFW accuracy (lfw_accuracy.py); speed (speed.py: a frame against OpenCV's
YuNet + SFace, photo batches against the face_recognition CLI, int8 search against float32).

Run them as scripts from the repository root, e.g.
``.venv/bin/python benchmarks/lfw_accuracy.py --help``. The pure LFW maths in
lfw_protocol.py is importable by tests without doing any work.
"""
