"""Benchmarks of the shared rooms (the sandbox's layers, the study runner), beside the papers' own.

Like the papers, each module here registers its benchmark on import and sits above the rooms it
measures; :func:`reprolab.study.discover` finds them by listing this package, so the registry in
``study.py`` never imports them by name (no import circle between the runner and its benchmark).
"""
