"""``flmon demo``: the reference deployment on loopback.

A Flower federation (the hospitals or banks example) instrumented with flmon, a
Pushgateway, Prometheus loaded with the rendered rules, AlertManager loaded with the
rendered configuration, and a Slack-compatible receiver, all real processes on
``127.0.0.1`` (:mod:`flmon.stack`). The apps themselves are in :mod:`flmon.reference`.
"""
