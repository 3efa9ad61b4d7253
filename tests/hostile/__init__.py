"""A hostile-input corpus for edge (issue 10): deterministic bad inputs and a runner.

    from hostile import generate, runner
    fixtures = runner.Fixtures.make(tmp_dir)          # the base gallery, demo frames, probes
    cases = generate.all_cases(seed=10)                # [Case], grouped by family
    results = runner.run_cases(cases, fixtures, jobs=2)

``generate`` yields frozen ``Case`` values (family, name, the edge command
line, the files it needs, what counts as correct); ``runner`` runs each as a
subprocess (``python -m edge.cli``) with a timeout, measures its peak RSS
(its VmHWM) and judges it. The MQTT family runs against one door
process and a real Mosquitto. ``benchmarks/hostile.py`` runs the whole
corpus; ``tests/test_hostile_corpus.py`` a bounded subset.
"""
