"""``instrument(strategy)`` for Flower's legacy strategies (``flwr.server.strategy``).

``InstrumentedLegacyStrategy`` wraps any ``flwr.server.strategy.Strategy`` (FedAvg,
FedProx, FedAdam, Krum, FedMedian, FedTrimmedAvg, the DP wrappers, users' subclasses)
the way Flower's legacy DP wrappers do: it is a legacy Strategy, holds the wrapped one
in ``.strategy`` and delegates every method. It records the same ``fl_*`` metrics as
the Message-API wrapper, with the same recorder, labeler, pusher, DP reading and
update indicators, and what it records never raises into the strategy.

What differs on the legacy path:

- Telemetry: Flower drops the reply's ``flmon.telemetry`` record when it converts the
  reply to a ``FitRes``; the wrapper asks ``telemetry_mod`` for a copy in the result's
  metrics and strips it before aggregation (see :mod:`.legacy_telemetry`).
- Failures: Flower passes errored replies as bare exceptions, without their node; the
  wrapper attributes them to the selected nodes that returned nothing (error code when
  Flower kept it, else ``unknown``).
- The end of the run: a legacy strategy is not told. Pass ``num_rounds`` (the
  ``ServerConfig``'s) or call :meth:`InstrumentedLegacyStrategy.close`; otherwise the
  run is closed when the ServerApp process exits.
- Run identity: the run id is read from the client manager's proxies (each holds its
  run's id) when the run starts, or passed as ``run_id`` (``context.run_id`` in
  ``server_fn``). It becomes the process's current run (the live exporter's
  ``run_id`` label) and part of the Pushgateway grouping key, as with the Message API
  wrapper; nothing is pushed before it is known, so no ``run_id="unknown"`` group is
  left behind.
- Nothing to aggregate: when the guard sets every result of a phase aside (a tie of
  metric key sets without history is ``undecided_metric_keys``, the same rule as the
  Message API guard's), the wrapped strategy is not called; the wrapper returns
  ``(None, {})``, on which Flower's legacy loop keeps the previous global parameters
  (train) or records no loss (evaluate), and the run goes on.
- Weights: ``num_examples`` is the client's claim and FedAvg's weight; it is judged by
  the Message API guard's weight rules (:mod:`.weights`, bounded by ``reply_limits``):
  ``invalid_weight``, ``outlying_weight``, ``undecided_weights``. The kept results'
  shares are exported (``fl_client_weight_share``) and scored, as on the Message API.
- Secure aggregation (SecAgg+): every result carries the same aggregate, so per-client
  update indicators cannot be computed; the wrapper says so
  (``fl_update_indicators_available`` 0 and a log line) instead of exporting zeros.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from flwr.common import (
    EvaluateIns,
    EvaluateRes,
    FitIns,
    FitRes,
    Parameters,
    Scalar,
    parameters_to_ndarrays,
)
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import Strategy as LegacyStrategy

from flmon import registry
from flmon.flower import legacy_guard, legacy_telemetry, weights
from flmon.flower.recorder import ServerRecorder, error_name
from flmon.flower.replies import Limits
from flmon.flower.shapes import MetricShape
from flmon.flower.strategy import (
    _flwr_version,
    check_options,
    make_datadog,
    make_pusher,
    secret_rng,
)
from flmon.labels import DEFAULT_MAX_CLIENT_LABELS, ClientIdentity, ClientLabeler
from flmon.logs import log_context, set_global_context
from flmon.metrics import FlmonMetrics
from flmon.runlabel import RUN_ID_LABEL, UNKNOWN_RUN, set_current_run
from flmon.security.dp import read_dp
from flmon.security.updates import (
    DEFAULT_THRESHOLD,
    MalformedUpdateError,
    UpdateSummary,
    round_stats,
    sample_positions,
    split_positions,
    summarize_update,
)

log = logging.getLogger("flmon.flower")

Failures = list[tuple[ClientProxy, Any] | BaseException]


def _tensor_bytes(parameters: Parameters) -> int:
    return sum(len(t) for t in parameters.tensors)


def _exception_error(failure: BaseException) -> str:
    """Flower's error code of an errored reply, when the exception still holds it."""
    for arg in failure.args:
        code = getattr(arg, "code", None)
        if isinstance(code, int) and not isinstance(code, bool):
            return error_name(code)
    return "unknown"


def _is_secure(results: list[tuple[ClientProxy, FitRes]]) -> bool:
    # SecAgg+ hands the strategy one shared Parameters object (the unmasked sum) in
    # every result; ordinary results each hold their own. Clients cannot cause this.
    return len(results) > 1 and len({id(res.parameters) for _, res in results}) == 1


class InstrumentedLegacyStrategy(LegacyStrategy):
    """A legacy Strategy that records ``fl_*`` metrics around a wrapped legacy Strategy.

    Parameters
    ----------
    strategy
        The ``flwr.server.strategy.Strategy`` to wrap; every method is delegated to it.
    num_rounds
        The run's number of rounds (``ServerConfig.num_rounds``): the run is recorded as
        ended once that round completes. Without it the run ends at :meth:`close` or
        when the process exits.
    run_id
        The Flower run id (``context.run_id``). Read from the client manager when
        omitted.
    secure_aggregation
        True when the run uses SecAgg+ (``SecAggPlusWorkflow``): update indicators are
        reported unavailable from the start. Detected in the first round when omitted.
    reply_limits
        Bounds of the reply guard (metric keys, list lengths, weights: here
        ``num_examples``); see :class:`flmon.flower.replies.Limits` for the defaults.
    metrics, max_client_labels, client_identity, pseudonym_key, quarantine, update_stats,
    update_sample_size, anomaly_threshold, pushgateway, job, grouping_key,
    pushgateway_username, pushgateway_password_file
        As for :class:`flmon.flower.InstrumentedStrategy`.
    """

    def __init__(
        self,
        strategy: LegacyStrategy,
        *,
        num_rounds: int | None = None,
        run_id: int | None = None,
        secure_aggregation: bool | None = None,
        metrics: FlmonMetrics | None = None,
        max_client_labels: int = DEFAULT_MAX_CLIENT_LABELS,
        client_identity: ClientIdentity = "node_id",
        pseudonym_key: bytes | str | None = None,
        quarantine: bool = True,
        reply_limits: Limits | None = None,
        update_stats: bool = True,
        update_sample_size: int | None = None,
        anomaly_threshold: float = DEFAULT_THRESHOLD,
        pushgateway: str | None = None,
        job: str = "flmon",
        grouping_key: Mapping[str, str] | None = None,
        pushgateway_username: str | None = None,
        pushgateway_password_file: str | None = None,
    ) -> None:
        if not isinstance(strategy, LegacyStrategy):
            raise TypeError(
                f"strategy must be a flwr.server.strategy.Strategy, got {type(strategy)!r}"
            )
        if num_rounds is not None and (isinstance(num_rounds, bool) or num_rounds < 1):
            raise ValueError("num_rounds must be >= 1")
        if run_id is not None and (isinstance(run_id, bool) or not isinstance(run_id, int)
                                   or run_id < 0):
            raise ValueError("run_id must be a non-negative int (the Flower run id)")
        check_options(update_sample_size, anomaly_threshold, reply_limits)
        self.strategy = strategy
        self.num_rounds = num_rounds
        self.run_id: int | None = run_id
        self.secure_aggregation = secure_aggregation
        self.metrics = metrics if metrics is not None else registry.server_metrics()
        self.recorder = ServerRecorder(
            self.metrics,
            ClientLabeler(max_client_labels, client_identity, pseudonym_key),
            anomaly_threshold,
        )
        for phase in ("train", "evaluate"):
            for reason in legacy_guard.LEGACY_REASONS:
                self.metrics.counter("fl_replies_quarantined_total").labels(
                    phase=phase, reason=reason)
        self.quarantine = quarantine
        self.reply_limits = reply_limits if reply_limits is not None else Limits()
        self.update_stats = update_stats
        self.update_sample_size = update_sample_size
        self._rng = secret_rng()
        self.pusher = make_pusher(self.metrics, pushgateway, job, grouping_key,
                                  pushgateway_username, pushgateway_password_file)
        self.datadog = make_datadog(self.metrics)
        self._lock = threading.Lock()
        self._started = False
        self._closed = False
        self._error: BaseException | None = None
        self._round: int | None = None
        self._round_start = 0.0
        self._phase_start: dict[str, float] = {}
        self._selected: dict[str, set[int]] = {}
        self._awaiting_train = False
        self._sent: list[Any] | None = None
        self._reference: dict[str, MetricShape] = {}
        self._told_unavailable = False

    # -- delegation --------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        if name == "strategy":
            raise AttributeError(name)
        return getattr(self.strategy, name)

    def __repr__(self) -> str:
        return f"InstrumentedLegacyStrategy({self.strategy!r})"

    def _safely(self, what: str, func: Any, *args: Any) -> Any:
        try:
            return func(*args)
        except Exception:
            log.warning("flmon could not record %s", what, exc_info=True)
            return None

    def _push(self) -> None:
        # Into the run's own group only: never into a run_id="unknown" group that the
        # watch could not tie to a run (and so would never delete).
        if self.pusher is not None and self.run_id is not None:
            self.pusher.request()

    def _delegate(self, func: Any, *args: Any) -> Any:
        try:
            return func(*args)
        except Exception as exc:
            self._error = exc
            raise

    # -- the run -------------------------------------------------------------------------
    def _identify_run(self, client_manager: ClientManager | None) -> None:
        """Take the run id from the client manager's proxies, once one is there."""
        if self.run_id is None and client_manager is not None:
            for proxy in client_manager.all().values():
                value = getattr(proxy, "run_id", None)
                if isinstance(value, int) and not isinstance(value, bool):
                    self.run_id = value
                    break
        if self.run_id is None:
            return
        set_global_context(run_id=self.run_id)
        set_current_run(self.run_id)  # the live exporter's run_id label
        if self.pusher is not None:  # one Pushgateway group per run
            self.pusher.grouping_key[RUN_ID_LABEL] = str(self.run_id)
        if self._started:  # known only now: fl_run_info said "unknown"
            self.recorder.run_identified(self.run_id)

    def _start_run(self, client_manager: ClientManager | None) -> None:
        if self._started:
            return
        self._identify_run(client_manager)
        self._started = True
        run_id: int | str = self.run_id if self.run_id is not None else UNKNOWN_RUN
        if self.run_id is None:
            set_global_context(run_id=run_id)
        self.recorder.run_started(run_id, type(self.strategy).__name__, _flwr_version(),
                                  self.num_rounds or 0)
        available = self.update_stats and not self.secure_aggregation
        self.metrics.gauge("fl_update_indicators_available").set(1 if available else 0)
        if self.secure_aggregation:
            self._say_unavailable()
        if read_dp(self.strategy) is not None:
            self.recorder.dp_started()
        self._record_dp()
        atexit.register(self.close)
        self._push()

    def close(self) -> None:
        """Record the end of the run and flush the Pushgateway; idempotent."""
        with self._lock:
            if self._closed or not self._started:
                return
            self._closed = True
        if self._error is None:
            self._safely("round end", self._finish_phases)
        else:
            self._round = None
        self._safely("run end", self.recorder.run_ended, self._error)
        atexit.unregister(self.close)
        if self.pusher is not None and self.run_id is not None:
            self.pusher.close(timeout=5.0)
        if self.datadog is not None:
            self.datadog.close(timeout=5.0)

    def _say_unavailable(self) -> None:
        self.metrics.gauge("fl_update_indicators_available").set(0)
        if not self._told_unavailable:
            self._told_unavailable = True
            log.warning("per-client update indicators are unavailable: the strategy "
                        "receives securely aggregated updates (SecAgg+), not each "
                        "client's own; update norms and anomaly scores are not computed")

    # -- rounds --------------------------------------------------------------------------
    def _enter_round(self, server_round: int) -> None:
        if self._round == server_round:
            return
        self._finish_phases()
        self._round = server_round
        self._round_start = time.perf_counter()
        set_global_context(round=server_round)
        self.recorder.round_started(server_round)

    def _finish_phases(self) -> None:
        """Close whatever the last round left open (a halted secure aggregation...)."""
        if self._awaiting_train:
            self._train_halted()
        self._complete_round()

    def _train_halted(self) -> None:
        # configure_fit ran but aggregate_fit never came: the fit workflow gave up
        # (SecAgg+ halts when too few clients remain in a stage).
        self._awaiting_train = False
        selected = len(self._selected.get("train", ()))
        log.error("round %s: the train phase ended without aggregation (%d selected); "
                  "a secure aggregation stage failed or too few clients remained",
                  self._round, selected)
        self.recorder.aggregation_failed("train")
        self.recorder.phase_aggregated("train", 0, selected, time.perf_counter()
                                       - self._phase_start.get("train", time.perf_counter()))

    def _complete_round(self) -> None:
        if self._round is None:
            return
        completed = self._round
        self.recorder.round_completed(time.perf_counter() - self._round_start)
        self._round = None
        self._push()
        if self.num_rounds is not None and completed >= self.num_rounds:
            self.close()

    # -- configure -----------------------------------------------------------------------
    def initialize_parameters(self, client_manager: ClientManager) -> Parameters | None:
        self._safely("run start", self._start_run, client_manager)
        result: Parameters | None = self._delegate(self.strategy.initialize_parameters,
                                                    client_manager)
        return result

    def _configured(self, phase: str, instructions: list[tuple[ClientProxy, Any]],
                    nbytes: int) -> None:
        self._phase_start[phase] = time.perf_counter()
        self._selected[phase] = {legacy_guard.node_id(p) for p, _ in instructions}
        self.recorder.phase_configured(phase, len(instructions), nbytes * len(instructions))

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, FitIns]]:
        self._safely("run start", self._start_run, client_manager)
        if self.run_id is None:  # no node was there when the run started
            self._safely("run id", self._identify_run, client_manager)
        with log_context(round=server_round, phase="train"):
            self._safely("round start", self._enter_round, server_round)
            self._safely("nodes", lambda: self.recorder.nodes_connected(
                client_manager.num_available()))
            instructions: list[tuple[ClientProxy, FitIns]] = self._delegate(
                self.strategy.configure_fit, server_round, parameters, client_manager)
            self._sent = None
            if self.update_stats or self.quarantine:
                self._sent = self._safely("global arrays", parameters_to_ndarrays, parameters)
            self._safely("configure", self._configured, "train", instructions,
                         _tensor_bytes(parameters))
            self._awaiting_train = bool(instructions)
            self._push()
            return [(proxy, FitIns(ins.parameters, self._ask(ins.config)))
                    for proxy, ins in instructions]

    def configure_evaluate(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, EvaluateIns]]:
        with log_context(round=server_round, phase="evaluate"):
            if self._awaiting_train:
                self._safely("halted train", self._train_halted)
            instructions: list[tuple[ClientProxy, EvaluateIns]] = self._delegate(
                self.strategy.configure_evaluate, server_round, parameters, client_manager)
            self._safely("configure", self._configured, "evaluate", instructions,
                         _tensor_bytes(parameters))
            if not instructions:  # no evaluate phase: the round ends here
                self._safely("round end", self._complete_round)
            return [(proxy, EvaluateIns(ins.parameters, self._ask(ins.config)))
                    for proxy, ins in instructions]

    @staticmethod
    def _ask(config: Mapping[str, Scalar]) -> dict[str, Scalar]:
        return {**config, legacy_telemetry.REQUEST_KEY: 1}

    # -- results -------------------------------------------------------------------------
    def _receive(self, phase: str, results: list[tuple[ClientProxy, Any]],
                 failures: Failures, secure: bool) -> tuple[list[tuple[ClientProxy, Any]],
                                                            legacy_guard.Checked]:
        rec = self.recorder
        seen: set[int] = set()
        cleaned: dict[int, dict[str, Any]] = {}
        for index, (proxy, res) in enumerate(results):
            node = legacy_guard.node_id(proxy)
            seen.add(node)
            nbytes = 0 if secure or not isinstance(res, FitRes) else _tensor_bytes(
                res.parameters)
            self._safely("reply", rec.reply, phase, node, None, nbytes)
            metrics, record = legacy_telemetry.split(res.metrics or {})
            res.metrics = metrics
            cleaned[index] = metrics
            if record is not None:
                self._safely("telemetry", rec.telemetry, phase, node, record)
        unattributed: list[str] = []
        for failure in failures:
            if isinstance(failure, BaseException):
                unattributed.append(_exception_error(failure))
                continue
            proxy, res = failure
            node = legacy_guard.node_id(proxy)
            seen.add(node)
            # A flwr.common.Code (Flower refuses other values when converting).
            code = getattr(getattr(res, "status", None), "code", None)
            name = str(getattr(code, "name", "unknown")).lower()
            self._safely("reply", rec.reply, phase, node, None, 0)
            self._safely("failure", rec.failure, phase, node, name)
        missing = sorted(self._selected.get(phase, set()) - seen)
        # Flower passes errored replies without their node: they are the selected nodes
        # that returned nothing. One error code for all of them when it is unambiguous.
        common = unattributed[0] if len(set(unattributed)) == 1 else "unknown"
        for node in missing:
            error = common if unattributed else "no_reply"
            self._safely("failure", rec.failure, phase, node, error)
        if self.quarantine:
            global_arrays = self._sent if phase == "train" else None
            checked = legacy_guard.check(results, cleaned, global_arrays, secure,
                                         reference=self._reference.get(phase),
                                         selected=len(self._selected.get(phase, ())),
                                         limits=self.reply_limits)
            if checked.reference is not None:
                self._reference.setdefault(phase, checked.reference)
        else:
            checked = legacy_guard.Checked(kept=list(results))
            checked.weights = self._weights(checked.kept)
        for proxy, reason in checked.quarantined:
            self._safely("quarantine", rec.quarantined, phase, legacy_guard.node_id(proxy),
                         reason)
        if checked.quarantined and not checked.kept:
            self._safely("nothing aggregated", rec.nothing_aggregated, phase,
                         len(checked.quarantined))
        for proxy, res in checked.kept:
            node = legacy_guard.node_id(proxy)
            self._safely("client metrics", rec.client_metrics, phase, node,
                         {**(res.metrics or {}), "num_examples": res.num_examples,
                          **({"loss": res.loss} if isinstance(res, EvaluateRes) else {})},
                         "num_examples")
        if phase == "train" and checked.weights and len(checked.weights) == len(checked.kept):
            self._safely("weight shares", rec.weight_shares, checked.weights)
        self._safely("phase", lambda: rec.phase_aggregated(
            phase, len(checked.kept), len(self._selected.get(phase, ())) - len(checked.kept),
            time.perf_counter() - self._phase_start.get(phase, time.perf_counter())))
        return checked.kept, checked

    def _weights(self, kept: list[tuple[ClientProxy, Any]]) -> dict[int, float]:
        """Each kept result's ``num_examples`` by node id, when every one is acceptable
        (without the guard: the shares are exported only when they mean something)."""
        found: dict[int, float] = {}
        for proxy, res in kept:
            weight = weights.accepted(res.num_examples, self.reply_limits.max_weight)
            if weight is None:
                return {}
            found[legacy_guard.node_id(proxy)] = weight
        return found

    def _update_indicators(self, checked: legacy_guard.Checked,
                           kept: list[tuple[ClientProxy, FitRes]]) -> None:
        global_arrays = self._sent
        if global_arrays is None:
            return
        arrays = checked.arrays
        if not arrays:
            try:
                arrays = {legacy_guard.node_id(p): parameters_to_ndarrays(r.parameters)
                          for p, r in kept}
            except Exception:  # noqa: BLE001
                return
        # The same streaming indicators as the Message API path: exact norms, positions
        # sampled from a secretly seeded generator (a client cannot predict which
        # coordinates are looked at), no float64 copy of every update.
        sizes = [a.size for a in global_arrays]
        positions = split_positions(
            sample_positions(sum(sizes), self.update_sample_size, self._rng), sizes)
        summaries: dict[int, UpdateSummary] = {}
        for node, client_arrays in arrays.items():
            try:
                summaries[node] = summarize_update(client_arrays, global_arrays, positions)
            except (MalformedUpdateError, ValueError, TypeError):
                continue
        if summaries:
            # The claimed weight is scored as on the Message API: an outlying share
            # raises the anomaly score.
            shown = checked.weights if set(checked.weights) >= set(summaries) else None
            stats = round_stats({n: u.sample for n, u in summaries.items()},
                                norms={n: u.norm for n, u in summaries.items()},
                                weights={n: shown[n] for n in summaries} if shown else None)
            median = float(np.median([s.norm for s in stats.values()]))
            self.recorder.update_stats(stats, median)

    def aggregate_fit(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, FitRes]],
        failures: Failures,
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        with log_context(round=server_round, phase="train"):
            self._awaiting_train = False
            secure = bool(self.secure_aggregation) or _is_secure(results)
            if secure:
                self._safely("indicators", self._say_unavailable)
            kept, checked = self._receive("train", list(results), list(failures), secure)
            rec = self.recorder
            for proxy, _ in kept:
                self._safely("update", rec.model_update, legacy_guard.node_id(proxy))
            if self.update_stats and not secure and kept:
                self._safely("update stats", self._update_indicators, checked, kept)
            if checked.quarantined and not kept:
                # Every result set aside (undecided key sets...): the wrapped strategy
                # never sees them. (None, {}) is Flower's "no update": the legacy loop
                # keeps the previous global parameters.
                self._safely("aggregation failure", lambda: rec.aggregation_failed("train"))
                self._safely("dp", self._record_dp)
                self._push()
                return None, {}
            try:
                parameters, metrics = self._delegate(self.strategy.aggregate_fit,
                                                     server_round, kept, failures)
            except Exception:
                self._safely("aggregation failure", lambda: rec.aggregation_failed("train"))
                self._push()
                raise
            if parameters is None:
                self._safely("aggregation failure", lambda: rec.aggregation_failed("train"))
            self._safely("aggregate", lambda: rec.aggregated("train", metrics))
            self._safely("dp", self._record_dp)
            self._push()
            return parameters, metrics

    def aggregate_evaluate(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, EvaluateRes]],
        failures: Failures,
    ) -> tuple[float | None, dict[str, Scalar]]:
        with log_context(round=server_round, phase="evaluate"):
            kept, checked = self._receive("evaluate", list(results), list(failures), False)
            if checked.quarantined and not kept:
                self._safely("round end", self._complete_round)
                return None, {}
            try:
                loss, metrics = self._delegate(self.strategy.aggregate_evaluate,
                                               server_round, kept, failures)
            except Exception:
                self._safely("aggregation failure",
                             lambda: self.recorder.aggregation_failed("evaluate"))
                self._round = None  # a round cut short did not complete
                raise
            self._safely("aggregate", lambda: self.recorder.aggregated(
                "evaluate", {"loss": loss, **(metrics or {})}))
            self._safely("round end", self._complete_round)
            return loss, metrics

    def evaluate(
        self, server_round: int, parameters: Parameters
    ) -> tuple[float, dict[str, Scalar]] | None:
        result: tuple[float, dict[str, Scalar]] | None = self._delegate(
            self.strategy.evaluate, server_round, parameters)
        if result is not None:
            loss, metrics = result
            self._safely("centralized", lambda: self.recorder.centralized(
                {"loss": loss, **(metrics or {})}))
        return result

    def _record_dp(self) -> None:
        figures = read_dp(self.strategy)
        if figures is not None:
            self.recorder.dp(figures)

