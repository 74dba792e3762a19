"""Scaffolding for tests, smoke runs and benchmarks: tiny models built from a config (``tiny``) and the smoke inputs
(``smoke``: the tiny corpus, tiny models and tiny labels that the ``*_smoke.yaml`` configs read). No production stage
imports this package; failure injection for tests is ``disranker.faults.FaultInjection``, the hook the stages read."""
