"""``ServerRecorder``: turns what the strategy wrapper sees into ``fl_*`` metrics.

It holds the collectors (created once from the catalog) and the client labeler, and
offers one method per fact: a phase was configured, a reply arrived, telemetry was
validated, a round ended. The wrapper decides *when*; this class decides *how* it is
recorded.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import Any

from flwr.common.constant import ErrorCode

from flmon import __version__, telemetry
from flmon.flower.replies import QUARANTINE_REASONS
from flmon.labels import ClientLabel, ClientLabeler
from flmon.logs import security_event
from flmon.metric_keys import REPLY_ACCURACY, REPLY_LOSS, first_number
from flmon.metrics import FlmonMetrics
from flmon.security.dp import DpFigures
from flmon.security.updates import UpdateStats

log = logging.getLogger("flmon.flower")

PHASES: tuple[str, ...] = ("train", "evaluate")
SECURITY_EVENT_KINDS: tuple[str, ...] = (
    "reply_quarantined", "nothing_aggregated", "anomalous_update", "dp_budget_exhausted",
)

ERROR_NAMES: dict[int, str] = {
    value: name.lower()
    for name, value in vars(ErrorCode).items()
    if name.isupper() and isinstance(value, int)
}

ACCURACY_KEYS = REPLY_ACCURACY
LOSS_KEYS = REPLY_LOSS


def error_name(code: int) -> str:
    """Flower error code as a bounded label value."""
    return ERROR_NAMES.get(code, "unknown")


class ServerRecorder:
    """Records server-side facts into :class:`FlmonMetrics`.

    Parameters
    ----------
    metrics
        The collectors (server and sink sides).
    labeler
        Bounds and pseudonymises ``client`` label values.
    anomaly_threshold
        Anomaly score at or above which an update counts as anomalous.
    """

    def __init__(
        self,
        metrics: FlmonMetrics,
        labeler: ClientLabeler,
        anomaly_threshold: float,
        accuracy_keys: tuple[str, ...] = ACCURACY_KEYS,
        loss_keys: tuple[str, ...] = LOSS_KEYS,
    ) -> None:
        self.m = metrics
        self.labeler = labeler
        self.anomaly_threshold = anomaly_threshold
        self.accuracy_keys = accuracy_keys
        self.loss_keys = loss_keys
        self._run_info = ("unknown", "unknown")  # strategy, flwr version
        g, c = metrics.gauge, metrics.counter
        self._clients_tracked = g("fl_clients_tracked")
        self._clients_folded = c("fl_clients_folded_total")
        self._telemetry_ok = c("fl_telemetry_received_total")
        self._telemetry_rejected = c("fl_telemetry_rejected_total")
        # Series with known label values exist from the start, at 0, so that dashboards
        # and rate() see a healthy zero rather than no data.
        for reason in telemetry.REJECT_REASONS:
            self._telemetry_rejected.labels(reason=reason)
        for phase in PHASES:
            c("fl_aggregation_failures_total").labels(phase=phase)
            for reason in QUARANTINE_REASONS:
                c("fl_replies_quarantined_total").labels(phase=phase, reason=reason)
        for kind in SECURITY_EVENT_KINDS:
            c("fl_security_events_total").labels(kind=kind)
        self._initialised: set[str] = set()

    # -- clients ---------------------------------------------------------------------
    def client(self, node_id: int) -> ClientLabel:
        label = self.labeler.label(node_id)
        if label.new_fold:
            self._clients_folded.inc()
        if label.value not in self._initialised:
            self._initialised.add(label.value)
            self._clients_tracked.set(self.labeler.tracked)
            for name in ("fl_anomalous_updates_total", "fl_client_errors_total"):
                self.m.counter(name).labels(client=label.value)
        return label

    # -- run ---------------------------------------------------------------------------
    def run_started(self, run_id: int | str, strategy: str, flwr_version: str,
                    num_rounds: int) -> None:
        self._run_info = (strategy, flwr_version)
        self.run_identified(run_id)
        self.m.gauge("fl_run_active").set(1)
        self.m.gauge("fl_run_start_timestamp_seconds").set(time.time())
        self.m.gauge("fl_run_end_timestamp_seconds").set(0)
        self.m.gauge("fl_rounds_planned").set(num_rounds)

    def run_identified(self, run_id: int | str) -> None:
        """(Re)label ``fl_run_info`` with the run id (known late on the legacy path)."""
        strategy, flwr_version = self._run_info
        info = self.m.gauge("fl_run_info")
        info.clear()
        info.labels(run_id=str(run_id), strategy=strategy, flwr_version=flwr_version,
                    flmon_version=__version__).set(1)

    def run_ended(self, error: BaseException | None) -> None:
        self.m.gauge("fl_run_active").set(0)
        self.m.gauge("fl_round_in_progress").set(0)
        self.m.gauge("fl_run_end_timestamp_seconds").set(time.time())
        if error is not None:
            self.m.counter("fl_run_failures_total").labels(error=type(error).__name__).inc()

    # -- rounds ------------------------------------------------------------------------
    def round_started(self, server_round: int) -> None:
        self.m.gauge("fl_current_round").set(server_round)
        self.m.gauge("fl_round_in_progress").set(1)
        self.m.gauge("fl_round_start_timestamp_seconds").set(time.time())

    def round_completed(self, seconds: float) -> None:
        self.m.counter("fl_rounds_completed_total").inc()
        self.m.histogram("fl_round_duration_seconds").observe(seconds)
        self.m.gauge("fl_round_in_progress").set(0)
        self.m.gauge("fl_last_round_completed_timestamp_seconds").set(time.time())

    def nodes_connected(self, count: int) -> None:
        self.m.gauge("fl_nodes_connected").set(count)

    def phase_configured(self, phase: str, selected: int, bytes_sent: int) -> None:
        self.m.gauge("fl_clients_selected").labels(phase=phase).set(selected)
        self.m.counter("fl_bytes_sent_total").labels(phase=phase).inc(bytes_sent)

    def phase_aggregated(self, phase: str, replied: int, failed: int, seconds: float) -> None:
        self.m.gauge("fl_clients_replied").labels(phase=phase).set(replied)
        self.m.gauge("fl_clients_failed").labels(phase=phase).set(failed)
        self.m.gauge("fl_round_phase_duration_seconds").labels(phase=phase).set(seconds)

    def aggregation_failed(self, phase: str) -> None:
        self.m.counter("fl_aggregation_failures_total").labels(phase=phase).inc()

    # -- replies -----------------------------------------------------------------------
    def reply(self, phase: str, node_id: int, error_code: int | None, nbytes: int) -> None:
        label = self.client(node_id)
        self.m.counter("fl_client_replies_total").labels(phase=phase, client=label.value).inc()
        if nbytes:
            self.m.counter("fl_bytes_received_total").labels(
                phase=phase, client=label.value).inc(nbytes)
        answered = error_code is None or error_code in (
            ErrorCode.CLIENT_APP_RAISED_EXCEPTION, ErrorCode.MOD_FAILED_PRECONDITION,
            ErrorCode.LOAD_CLIENT_APP_EXCEPTION,
        )
        if answered and label.own:
            self.m.gauge("fl_client_last_seen_timestamp_seconds").labels(
                client=label.value).set_to_current_time()
        if error_code is not None:
            self.failure(phase, node_id, error_name(error_code))

    def failure(self, phase: str, node_id: int, error: str) -> None:
        label = self.client(node_id)
        self.m.counter("fl_client_failures_total").labels(
            phase=phase, client=label.value, error=error).inc()

    def client_metrics(self, phase: str, node_id: int, metrics: Mapping[str, Any],
                       weight_key: str | None) -> None:
        label = self.client(node_id)
        if weight_key is not None:
            examples = first_number(metrics, (weight_key,))
            if examples is not None and math.isfinite(examples) and examples >= 0:
                self.m.counter("fl_client_examples_total").labels(
                    phase=phase, client=label.value).inc(examples)
        if not label.own:
            return
        stage = "training" if phase == "train" else "evaluation"
        accuracy = first_number(metrics, self.accuracy_keys)
        loss = first_number(metrics, self.loss_keys)
        if accuracy is not None:
            self.m.gauge(f"fl_client_{stage}_accuracy").labels(client=label.value).set(accuracy)
        if loss is not None:
            self.m.gauge(f"fl_client_{stage}_loss").labels(client=label.value).set(loss)

    def model_update(self, node_id: int) -> None:
        self.m.counter("fl_model_updates_total").labels(client=self.client(node_id).value).inc()

    def quarantined(self, phase: str, node_id: int, reason: str) -> None:
        self.m.counter("fl_replies_quarantined_total").labels(phase=phase, reason=reason).inc()
        self.m.counter("fl_security_events_total").labels(kind="reply_quarantined").inc()
        security_event(
            log, "reply-quarantined",
            f"reply from node {node_id} set aside before aggregation: {reason}",
            client=self.client(node_id).value, phase=phase,
        )

    def nothing_aggregated(self, phase: str, set_aside: int) -> None:
        """Every reply of the phase was set aside: the round aggregates nothing."""
        self.m.counter("fl_security_events_total").labels(kind="nothing_aggregated").inc()
        security_event(
            log, "nothing-aggregated",
            f"all {set_aside} replies of this {phase} phase were set aside: nothing is "
            "aggregated this round and the global model stays as it was",
            phase=phase,
        )

    def weight_shares(self, weights: Mapping[int, float]) -> None:
        """Each client's share of the round's total (train) weight."""
        total = sum(weights.values())
        if not total > 0:
            return
        for node_id, weight in weights.items():
            label = self.client(node_id)
            if label.own:
                self.m.gauge("fl_client_weight_share").labels(client=label.value).set(
                    weight / total)

    # -- telemetry ---------------------------------------------------------------------
    def telemetry(self, phase: str, node_id: int, record: Any) -> None:
        """Validate and record a client's telemetry record; never raises."""
        result = telemetry.validate(record)
        for reason in result.rejected:
            self._telemetry_rejected.labels(reason=reason).inc()
        if not result.accepted:
            return
        self._telemetry_ok.inc()
        label = self.client(node_id)
        values = result.values
        errors = values.get("errors")
        if errors:
            self.m.counter("fl_client_errors_total").labels(client=label.value).inc(errors)
        if not label.own:
            return
        client = label.value
        if "duration_s" in values:
            self.m.gauge("fl_client_fit_duration_seconds").labels(
                phase=phase, client=client).set(values["duration_s"])
        if phase == "train":
            for key, name in (("epochs", "fl_client_local_epochs"),
                              ("steps", "fl_client_local_steps")):
                if key in values:
                    self.m.gauge(name).labels(client=client).set(values[key])
        if "dp_epsilon" in values:
            self.m.gauge("fl_client_dp_epsilon").labels(client=client).set(values["dp_epsilon"])

    # -- aggregates --------------------------------------------------------------------
    def aggregated(self, phase: str, metrics: Mapping[str, Any] | None) -> None:
        stage = "training" if phase == "train" else "evaluation"
        accuracy = first_number(metrics, self.accuracy_keys)
        loss = first_number(metrics, self.loss_keys)
        if accuracy is not None:
            self.m.gauge(f"fl_{stage}_accuracy").set(accuracy)
            if stage == "training":
                valid = math.isfinite(accuracy) and 0.0 <= accuracy <= 1.0
                self.m.gauge("fl_training_accuracy_valid").set(1 if valid else 0)
        if loss is not None:
            self.m.gauge(f"fl_{stage}_loss").set(loss)

    def centralized(self, metrics: Mapping[str, Any] | None) -> None:
        accuracy = first_number(metrics, self.accuracy_keys)
        loss = first_number(metrics, self.loss_keys)
        if accuracy is not None:
            self.m.gauge("fl_centralized_accuracy").set(accuracy)
        if loss is not None:
            self.m.gauge("fl_centralized_loss").set(loss)

    # -- security ----------------------------------------------------------------------
    def update_stats(self, stats: Mapping[int, UpdateStats], median_norm: float) -> list[int]:
        """Record the round's update indicators; return the anomalous node ids."""
        self.m.gauge("fl_update_norm_median").set(median_norm)
        anomalous: list[int] = []
        for node_id, s in stats.items():
            label = self.client(node_id)
            if label.own:
                c = label.value
                self.m.gauge("fl_client_update_norm").labels(client=c).set(s.norm)
                self.m.gauge("fl_client_update_cosine_similarity").labels(client=c).set(s.cosine)
                self.m.gauge("fl_client_anomaly_score").labels(client=c).set(s.score)
            if s.score >= self.anomaly_threshold:
                anomalous.append(node_id)
                self.m.counter("fl_anomalous_updates_total").labels(client=label.value).inc()
                self.m.counter("fl_security_events_total").labels(kind="anomalous_update").inc()
                security_event(
                    log, "anomalous-update",
                    f"update of client {label.value} is anomalous: score {s.score:.2f} "
                    f"(norm {s.norm:.4g}, cosine {s.cosine:.3f}"
                    + (f", weight share {s.weight_share:.3f})" if s.weight_share is not None
                       else ")"),
                    client=label.value,
                )
        return anomalous

    def dp(self, figures: DpFigures) -> None:
        for value, name in (
            (figures.epsilon, "fl_dp_epsilon_spent"),
            (figures.delta, "fl_dp_delta"),
            (figures.noise_multiplier, "fl_dp_noise_multiplier"),
            (figures.clipping_norm, "fl_dp_clipping_norm"),
        ):
            if value is not None:
                self.m.gauge(name).set(value)
        self.m.gauge("fl_dp_epsilon_budget").set(figures.budget or 0.0)

    def dp_started(self) -> None:
        self.m.gauge("fl_dp_budget_exhausted").set(0)

    def dp_budget_exhausted(self, error: BaseException) -> None:
        """The DP strategy refused a release: the budget is spent."""
        self.m.gauge("fl_dp_budget_exhausted").set(1)
        self.m.counter("fl_security_events_total").labels(kind="dp_budget_exhausted").inc()
        security_event(log, "dp-budget-exhausted",
                       f"the privacy accountant refused a release: {error}")
