"""``instrument(strategy)``: the ServerApp side of flmon.

``InstrumentedStrategy`` wraps any ``flwr.serverapp.strategy.Strategy`` (FedAvg, Krum,
the DP wrappers...) the way Flower's own DP wrappers do: it is a Strategy, holds the
wrapped one in ``.strategy``, and delegates every method. Around each call it records
rounds, participation, failures, per-client telemetry, aggregated metrics, update
anomaly indicators and the DP budget. What it records never raises into the strategy.

Before aggregation it removes flmon's telemetry record from each reply and sets aside
replies that would stop the run or poison the aggregate (see :mod:`.replies`).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, overload

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.common.constant import SUPERLINK_NODE_ID
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Result, Strategy

from flmon import registry, telemetry
from flmon.flower.arrays import layout, view
from flmon.flower.recorder import ServerRecorder
from flmon.flower.replies import Limits, MetricShape, triage, weight_of
from flmon.labels import DEFAULT_MAX_CLIENT_LABELS, ClientIdentity, ClientLabeler
from flmon.logs import log_context, set_global_context
from flmon.metrics import FlmonMetrics
from flmon.push import Pusher
from flmon.runlabel import RUN_ID_LABEL, current_run, set_current_run
from flmon.secrets import read_secret
from flmon.security.dp import read_dp
from flmon.security.updates import (
    AUTO_SAMPLE_SIZE,
    DEFAULT_THRESHOLD,
    MalformedUpdateError,
    UpdateSummary,
    all_finite,
    round_stats,
    sample_positions,
    split_positions,
    summarize_update,
)

if TYPE_CHECKING:
    from flwr.server.strategy import Strategy as LegacyStrategy

    from flmon.flower.legacy import InstrumentedLegacyStrategy
    from flmon.sinks.datadog import DatadogSink

log = logging.getLogger("flmon.flower")

EvaluateFn = Callable[[int, ArrayRecord], "MetricRecord | None"]


def _array_bytes(record: ArrayRecord) -> int:
    return sum(len(array.data) for array in record.values())


def _content_bytes(msg: Message) -> int:
    if msg.has_error() or not msg.has_content():
        return 0
    return sum(_array_bytes(rec) for rec in msg.content.array_records.values())


def _flwr_version() -> str:
    try:
        from importlib.metadata import version

        return version("flwr")
    except Exception:  # noqa: BLE001
        return "unknown"


def _pushgateway_credentials(
    username: str | None, password_file: str | None
) -> tuple[str | None, str | None]:
    username = username or os.environ.get("FLMON_PUSHGATEWAY_USERNAME") or None
    if username is None:
        return None, None
    password = read_secret(env="FLMON_PUSHGATEWAY_PASSWORD", file=password_file,
                           file_env="FLMON_PUSHGATEWAY_PASSWORD_FILE", what="Pushgateway password")
    if password is None:
        raise ValueError("a Pushgateway username needs a password: set "
                         "FLMON_PUSHGATEWAY_PASSWORD_FILE or FLMON_PUSHGATEWAY_PASSWORD")
    return username, password


def _reply_node(msg: Message, addressee: Mapping[str, int]) -> int:
    """The node a reply is about.

    The SuperLink answers for a node that is gone with an error reply of its own
    (``src_node_id`` is the SuperLink's id): such a reply is counted against the node
    its instruction went to, found through ``reply_to_message_id``. Any other reply is
    the sender's (the SuperLink only accepts a node's reply to an instruction for it).
    """
    if msg.metadata.src_node_id == SUPERLINK_NODE_ID:
        return addressee.get(msg.metadata.reply_to_message_id, SUPERLINK_NODE_ID)
    return msg.metadata.src_node_id


def check_options(update_sample_size: int | None, anomaly_threshold: float,
                  reply_limits: Limits | None = None) -> None:
    """Refuse options both strategy wrappers (Message API and legacy) take."""
    if reply_limits is not None and not isinstance(reply_limits, Limits):
        raise TypeError("reply_limits must be a flmon.flower.replies.Limits, got "
                        f"{type(reply_limits)!r}")
    if update_sample_size is not None and update_sample_size < 1:
        raise ValueError("update_sample_size must be >= 1")
    if not math.isfinite(anomaly_threshold) or anomaly_threshold <= 0:
        raise ValueError("anomaly_threshold must be a positive number")


def make_pusher(metrics: FlmonMetrics, pushgateway: str | None, job: str,
                grouping_key: Mapping[str, str] | None, username: str | None,
                password_file: str | None) -> Pusher | None:
    """The Pushgateway pusher of a strategy wrapper (``FLMON_PUSHGATEWAY`` when omitted)."""
    gateway = pushgateway if pushgateway is not None else os.environ.get("FLMON_PUSHGATEWAY")
    if not gateway:
        return None
    errors = metrics.counter("fl_sink_errors_total").labels(sink="pushgateway")
    user, password = _pushgateway_credentials(username, password_file)
    return Pusher(gateway, metrics.registry, job=job, grouping_key=grouping_key,
                  on_error=lambda _e: errors.inc(), username=user, password=password)


def make_datadog(metrics: FlmonMetrics) -> DatadogSink | None:
    """flmon's DogStatsD sink mirroring a strategy wrapper's metrics, when the environment
    enables it (``FLMON_DATADOG_ENABLED=1``; address, namespace and tags from
    ``FLMON_DATADOG_*`` / ``DD_AGENT_HOST``, see :class:`flmon.sinks.datadog.DatadogConfig`);
    ``None`` otherwise. Closed (with a last collection) when the run ends."""
    from flmon.sinks.base import SINK_METRICS
    from flmon.sinks.factory import datadog_enabled

    if not datadog_enabled():
        return None
    from flmon.sinks.datadog import DatadogConfig, DatadogSink

    # The fl_sink_* counters beside the run's series when they were created there.
    counters = metrics if all(name in metrics for name in SINK_METRICS) else None
    return DatadogSink(DatadogConfig.from_env(), mirror=metrics, metrics=counters)


def secret_rng() -> np.random.Generator:
    """A generator seeded from ``os.urandom``: sampled positions clients cannot predict."""
    return np.random.default_rng(int.from_bytes(os.urandom(32), "big"))


class InstrumentedStrategy(Strategy):
    """A Strategy that records ``fl_*`` metrics around a wrapped Strategy.

    Parameters
    ----------
    strategy
        The strategy to wrap; every method is delegated to it.
    metrics
        Collectors to record into. flmon's process-wide server metrics (in the default
        registry served by ``start_exporter()``) when omitted.
    max_client_labels
        Distinct clients with a ``client`` label value of their own; later clients are
        folded into ``client="_other"``.
    client_identity, pseudonym_key
        ``node_id``, ``pseudonym`` (keyed hash) or ``none``; see :class:`ClientLabeler`.
    quarantine
        Set aside replies that would end the run or poison the aggregate (the reply
        guard, :mod:`flmon.flower.replies`).
    reply_limits
        Bounds of the reply guard (metric keys, list lengths, weights); see
        :class:`flmon.flower.replies.Limits` for the defaults.
    update_stats
        Compute update norms, cosine similarities and anomaly scores.
    update_sample_size
        Parameter positions the reference update and the cosines are computed on, drawn
        afresh each round from a generator seeded from ``os.urandom`` when the wrapper is
        created (never logged or exported); ``None`` uses every position. Norms and
        finiteness always cover every coordinate.
    anomaly_threshold
        Anomaly score at which an update is counted and logged as anomalous.
    pushgateway
        ``host:port`` of a Pushgateway to push to at the end of each phase and of the
        run; the ``FLMON_PUSHGATEWAY`` environment variable when omitted.
    job, grouping_key
        Pushgateway grouping.
    pushgateway_username, pushgateway_password_file
        Basic credentials for a Pushgateway behind a web config; the environment
        variables ``FLMON_PUSHGATEWAY_USERNAME`` and ``FLMON_PUSHGATEWAY_PASSWORD_FILE``
        (or ``FLMON_PUSHGATEWAY_PASSWORD``) when omitted. The password is never logged.
    """

    def __init__(
        self,
        strategy: Strategy,
        *,
        metrics: FlmonMetrics | None = None,
        max_client_labels: int = DEFAULT_MAX_CLIENT_LABELS,
        client_identity: ClientIdentity = "node_id",
        pseudonym_key: bytes | str | None = None,
        quarantine: bool = True,
        reply_limits: Limits | None = None,
        update_stats: bool = True,
        update_sample_size: int | None = AUTO_SAMPLE_SIZE,
        anomaly_threshold: float = DEFAULT_THRESHOLD,
        pushgateway: str | None = None,
        job: str = "flmon",
        grouping_key: Mapping[str, str] | None = None,
        pushgateway_username: str | None = None,
        pushgateway_password_file: str | None = None,
    ) -> None:
        if not isinstance(strategy, Strategy):
            raise TypeError(
                f"instrument() needs a flwr.serverapp.strategy.Strategy, got {type(strategy)!r}"
            )
        check_options(update_sample_size, anomaly_threshold, reply_limits)
        self.strategy = strategy
        self.metrics = metrics if metrics is not None else registry.server_metrics()
        self.recorder = ServerRecorder(
            self.metrics,
            ClientLabeler(max_client_labels, client_identity, pseudonym_key),
            anomaly_threshold,
        )
        self.quarantine = quarantine
        self.reply_limits = reply_limits if reply_limits is not None else Limits()
        self.update_stats = update_stats
        self.update_sample_size = update_sample_size
        self.pusher = make_pusher(self.metrics, pushgateway, job, grouping_key,
                                  pushgateway_username, pushgateway_password_file)
        self.datadog = make_datadog(self.metrics)
        self._round: int | None = None
        self._round_start = 0.0
        self._phase_start: dict[str, float] = {}
        self._selected: dict[str, set[int]] = {}
        self._instructions: dict[str, list[Message]] = {}
        self._sent_arrays: ArrayRecord | None = None
        # The metric shape established per phase: later replies are judged against it.
        self._reference: dict[str, MetricShape] = {}
        # Secret: which coordinates are sampled must not be predictable by clients.
        self._rng = secret_rng()

    # -- delegation ------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        # Only called for attributes not found on the wrapper: read them from the
        # wrapped strategy (fraction_train, weighted_by_key, privacy_spent...).
        if name == "strategy":
            raise AttributeError(name)
        return getattr(self.strategy, name)

    def __repr__(self) -> str:
        return f"InstrumentedStrategy({self.strategy!r})"

    def summary(self) -> None:
        self.strategy.summary()

    # -- safety ------------------------------------------------------------------------
    def _safely(self, what: str, func: Callable[..., Any], *args: Any) -> Any:
        try:
            return func(*args)
        except Exception:
            log.warning("flmon could not record %s", what, exc_info=True)
            return None

    def _push(self) -> None:
        if self.pusher is not None:
            self.pusher.request()

    # -- rounds ------------------------------------------------------------------------
    def _enter_round(self, server_round: int) -> None:
        if self._round == server_round:
            return
        if self._round is not None:
            self._complete_round()
        self._round = server_round
        self._round_start = time.perf_counter()
        set_global_context(round=server_round)
        self.recorder.round_started(server_round)

    def _complete_round(self) -> None:
        if self._round is None:
            return
        self.recorder.round_completed(time.perf_counter() - self._round_start)
        self._round = None
        self._push()

    def _configure(
        self,
        phase: str,
        server_round: int,
        grid: Grid,
        call: Callable[[], Iterable[Message]],
    ) -> list[Message]:
        if phase == "train":
            self._safely("round start", self._enter_round, server_round)
            self._safely("nodes", lambda: self.recorder.nodes_connected(
                len(list(grid.get_node_ids()))))
        self._phase_start[phase] = time.perf_counter()
        messages = list(call())
        self._selected[phase] = {m.metadata.dst_node_id for m in messages}
        self._instructions[phase] = messages
        self._safely("configure", lambda: self.recorder.phase_configured(
            phase, len(messages), sum(_content_bytes(m) for m in messages)))
        # Pushed now, so that a round stuck waiting for replies shows as in progress.
        self._push()
        return messages

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self._sent_arrays = arrays
        with log_context(round=server_round, phase="train"):
            try:
                return self._configure("train", server_round, grid, lambda: self.strategy
                                       .configure_train(server_round, arrays, config, grid))
            except Exception as exc:
                # Flower's DP wrappers raise PrivacyBudgetExhausted *before* a release
                # would pass max_epsilon, so epsilon spent never reaches the budget.
                if type(exc).__name__ == "PrivacyBudgetExhausted":
                    self._safely("dp budget", self.recorder.dp_budget_exhausted, exc)
                    self._push()
                raise

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        with log_context(round=server_round, phase="evaluate"):
            return self._configure("evaluate", server_round, grid, lambda: self.strategy
                                   .configure_evaluate(server_round, arrays, config, grid))

    # -- replies -------------------------------------------------------------------------
    def _addressees(self, phase: str) -> dict[str, int]:
        """Map each instruction's message id (set by the grid when it pushed it) to its node."""
        return {m.metadata.message_id: m.metadata.dst_node_id
                for m in self._instructions.get(phase, ()) if m.metadata.message_id}

    def _receive(self, phase: str, replies: Iterable[Message]) -> list[Message]:
        """Record every reply and its telemetry; return the replies to aggregate."""
        replies = list(replies)
        rec = self.recorder
        seen: set[int] = set()
        addressee = self._addressees(phase)
        for msg in replies:
            node_id = _reply_node(msg, addressee)
            seen.add(node_id)
            code = msg.error.code if msg.has_error() else None
            self._safely("reply", rec.reply, phase, node_id, code, _content_bytes(msg))
            if code is None and msg.has_content() and telemetry.RECORD_KEY in msg.content:
                record = msg.content.pop(telemetry.RECORD_KEY)
                self._safely("telemetry", rec.telemetry, phase, node_id, record)
        for node_id in sorted(self._selected.get(phase, set()) - seen):
            self._safely("no reply", rec.failure, phase, node_id, "no_reply")
        weight_key: str | None = getattr(self.strategy, "weighted_by_key", None)
        if not self.quarantine:
            kept = [m for m in replies if not m.has_error()]
            errors = [m for m in replies if m.has_error()]
        else:
            sorted_ = triage(replies, is_train=phase == "train",
                             global_arrays=self._sent_arrays if phase == "train" else None,
                             weighted_by_key=weight_key,
                             reference=self._reference.get(phase),
                             selected=len(self._selected.get(phase, ())),
                             limits=self.reply_limits)
            if sorted_.reference is not None:
                self._reference.setdefault(phase, sorted_.reference)
            for msg, reason in sorted_.quarantined:
                node = msg.metadata.src_node_id
                self._safely("quarantine", rec.quarantined, phase, node, reason)
            if sorted_.quarantined and not sorted_.kept:
                self._safely("nothing aggregated", rec.nothing_aggregated, phase,
                             len(sorted_.quarantined))
            kept, errors = sorted_.kept, sorted_.errors
        for msg in kept:
            metrics = next(iter(msg.content.metric_records.values()), None)
            if metrics is not None:
                node = msg.metadata.src_node_id
                self._safely("client metrics", rec.client_metrics, phase, node, metrics,
                             weight_key or "num-examples")
        weights = self._weights(kept, weight_key) if phase == "train" else None
        if weights:
            self._safely("weight shares", rec.weight_shares, weights)
        if phase == "train" and kept and self._sent_arrays is not None:
            kept = self._update_signals(kept, weights)
        self._safely("phase", lambda: rec.phase_aggregated(
            phase, len(kept), len(self._selected.get(phase, ())) - len(kept),
            time.perf_counter() - self._phase_start.get(phase, time.perf_counter())))
        return kept + errors

    def _weights(self, kept: list[Message], weight_key: str | None
                 ) -> dict[int, float] | None:
        """Each kept reply's weight by node id, when every one has a valid weight."""
        if weight_key is None:
            return None
        weights: dict[int, float] = {}
        for msg in kept:
            metrics = next(iter(msg.content.metric_records.values()), None)
            weight = (weight_of(metrics, weight_key, self.reply_limits)
                      if metrics is not None else None)
            if weight is None:
                return None
            weights[msg.metadata.src_node_id] = weight
        return weights

    def _update_signals(self, kept: list[Message],
                        weights: Mapping[int, float] | None = None) -> list[Message]:
        """Check every coordinate of each update for finiteness; with ``update_stats``,
        compute the update indicators. Returns the replies to keep.

        Arrays are read in place from the replies' bytes and streamed one at a time: no
        copy of an update, no clients x parameters matrix.
        """
        assert self._sent_arrays is not None
        try:
            global_arrays = [view(a) for a in self._sent_arrays.values()]
        except Exception:
            log.debug("global arrays not readable as numpy", exc_info=True)
            return kept
        sizes = [a.size for a in global_arrays]
        positions = split_positions(
            sample_positions(sum(sizes), self.update_sample_size, self._rng), sizes)
        summaries: dict[int, UpdateSummary] = {}
        still: list[Message] = []
        for msg in kept:
            node = msg.metadata.src_node_id
            try:
                record = next(iter(msg.content.array_records.values()))
                arrays = [view(a, layout(a)) for a in record.values()]
                if self.update_stats:
                    summaries[node] = summarize_update(arrays, global_arrays, positions)
                elif not all_finite(arrays):
                    raise MalformedUpdateError("non-finite values")
            except (MalformedUpdateError, ValueError, TypeError):
                if self.quarantine:
                    self._safely("quarantine", self.recorder.quarantined, "train", node,
                                 "non_finite_arrays")
                    continue
            still.append(msg)
        if summaries:
            shown = weights if weights is not None and set(weights) >= set(summaries) else None
            stats = round_stats({n: s.sample for n, s in summaries.items()},
                                norms={n: s.norm for n, s in summaries.items()},
                                weights={n: shown[n] for n in summaries} if shown else None)
            median = float(np.median([s.norm for s in stats.values()]))
            self._safely("update stats", lambda: self.recorder.update_stats(stats, median))
        return still

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        with log_context(round=server_round, phase="train"):
            to_aggregate = self._receive("train", replies)
            rec = self.recorder
            for msg in to_aggregate:
                if not msg.has_error():
                    node = msg.metadata.src_node_id
                    self._safely("update", rec.model_update, node)
            try:
                arrays, metrics = self.strategy.aggregate_train(server_round, to_aggregate)
            except Exception:
                self._safely("aggregation failure", lambda: rec.aggregation_failed("train"))
                self._push()
                raise
            if arrays is None:
                self._safely("aggregation failure", lambda: rec.aggregation_failed("train"))
            self._safely("aggregate", lambda: rec.aggregated("train", metrics))
            self._safely("dp", self._record_dp)
            self._push()
            return arrays, metrics

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        with log_context(round=server_round, phase="evaluate"):
            to_aggregate = self._receive("evaluate", replies)
            try:
                metrics = self.strategy.aggregate_evaluate(server_round, to_aggregate)
            except Exception:
                self._safely("aggregation failure",
                             lambda: self.recorder.aggregation_failed("evaluate"))
                raise
            finally:
                self._safely("round end", self._complete_round)
            self._safely("aggregate", lambda: self.recorder.aggregated("evaluate", metrics))
            return metrics

    def _record_dp(self) -> None:
        figures = read_dp(self.strategy)
        if figures is not None:
            self.recorder.dp(figures)

    # -- the whole run -----------------------------------------------------------------
    def start(
        self,
        grid: Grid,
        initial_arrays: ArrayRecord,
        num_rounds: int = 3,
        timeout: float = 3600,
        train_config: ConfigRecord | None = None,
        evaluate_config: ConfigRecord | None = None,
        evaluate_fn: EvaluateFn | None = None,
    ) -> Result:
        """Run the wrapped strategy's federated loop, recording the run as a whole."""
        run_id: int | str = "unknown"
        try:
            run_id = grid.run.run_id
        except Exception:
            log.debug("grid has no run id", exc_info=True)
        set_global_context(run_id=run_id)
        set_current_run(run_id)  # the live exporter's run_id label
        if self.pusher is not None:  # one Pushgateway group per run
            self.pusher.grouping_key[RUN_ID_LABEL] = current_run()
        self._safely("run start", lambda: self.recorder.run_started(
            run_id, type(self.strategy).__name__, _flwr_version(), num_rounds))
        self._safely("dp", self._record_dp)
        self.metrics.gauge("fl_update_indicators_available").set(1 if self.update_stats else 0)
        if read_dp(self.strategy) is not None:
            self._safely("dp", self.recorder.dp_started)
        wrapped_fn = None
        if evaluate_fn is not None:
            inner = evaluate_fn

            def wrapped_fn(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
                result = inner(server_round, arrays)
                self._safely("centralized", lambda: self.recorder.centralized(result))
                return result

        self._push()
        error: BaseException | None = None
        try:
            return super().start(grid, initial_arrays, num_rounds, timeout, train_config,
                                 evaluate_config, wrapped_fn)
        except BaseException as exc:
            error = exc
            raise
        finally:
            if error is None:
                self._safely("round end", self._complete_round)
            else:  # a round cut short by an exception did not complete
                self._round = None
            self._safely("run end", lambda: self.recorder.run_ended(error))
            if self.pusher is not None:
                self.pusher.close(timeout=5.0)
            if self.datadog is not None:  # one last collection: the run's final values
                self.datadog.close(timeout=5.0)


@overload
def instrument(strategy: Strategy, **options: Any) -> InstrumentedStrategy: ...


@overload
def instrument(strategy: LegacyStrategy, **options: Any) -> InstrumentedLegacyStrategy: ...


def instrument(
    strategy: Strategy | LegacyStrategy, **options: Any
) -> InstrumentedStrategy | InstrumentedLegacyStrategy:
    """Wrap ``strategy`` so that it records ``fl_*`` metrics.

    A Message-API ``flwr.serverapp.strategy.Strategy`` gets an
    :class:`InstrumentedStrategy`; a legacy ``flwr.server.strategy.Strategy`` an
    :class:`flmon.flower.legacy.InstrumentedLegacyStrategy`.
    """
    from flwr.server.strategy import Strategy as Legacy

    if isinstance(strategy, Legacy):
        from flmon.flower.legacy import InstrumentedLegacyStrategy as Wrapper

        return Wrapper(strategy, **options)
    if not isinstance(strategy, Strategy):
        raise TypeError(
            "instrument() needs a flwr.serverapp.strategy.Strategy or a legacy "
            f"flwr.server.strategy.Strategy, got {type(strategy)!r}"
        )
    return InstrumentedStrategy(strategy, **options)
