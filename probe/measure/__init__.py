"""Measure: plan the tests, reach the hosts over SSH, run ping and iperf3, record every result.

``plan`` (pure) → ``ssh``/``remote``/``hostkeys`` (adapters) → ``bandwidth`` and
``measurement`` (the phases) → ``execute`` (the ``probe run`` use case).
"""
