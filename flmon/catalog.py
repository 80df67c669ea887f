"""The metric catalog: the single source of truth for every ``fl_*`` metric.

The exporter builds its collectors from this module, ``flmon render`` checks every
rule and dashboard query against it, ``docs/metrics.md`` is generated from it and
the tests read it. A metric that is not here does not exist.

Naming follows the Prometheus conventions: base units (seconds, bytes), ``_total``
on counters, ratios in 0..1, ``_info`` gauges with value 1 for metadata.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Literal

MetricType = Literal["counter", "gauge", "histogram", "info"]
Side = Literal["server", "client", "sink", "watch"]

CLIENT_LABEL = "client"
"""Label that names a client; its values are bounded by the server's cardinality cap."""

OTHER_CLIENTS = "_other"
"""Value of the ``client`` label for every client beyond the cardinality cap."""

ROUND_DURATION_BUCKETS: tuple[float, ...] = (
    0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
)
LOCAL_DURATION_BUCKETS: tuple[float, ...] = (
    0.001, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
)

RUN_DURATION_BUCKETS: tuple[float, ...] = (
    1.0, 10.0, 30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0,
)
RUN_BYTES_BUCKETS: tuple[float, ...] = tuple(float(10**k) for k in range(3, 13))
POLL_DURATION_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)

_NAME_RE = re.compile(r"^fl_[a-z][a-z0-9_]*[a-z0-9]$")
_LABEL_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_UNIT_SUFFIXES = {"seconds": "_seconds", "bytes": "_bytes", "ratio": "", "": ""}


@dataclass(frozen=True)
class MetricSpec:
    """One metric of the catalog.

    Parameters
    ----------
    name
        Full Prometheus name (counters carry ``_total``).
    type
        ``counter``, ``gauge``, ``histogram`` or ``info``.
    unit
        Base unit: ``seconds``, ``bytes``, ``ratio`` (0..1) or ``""`` for a count.
    labels
        Label names, in order.
    help
        One-line help text written to the exposition.
    side
        Where the metric is produced: the ``server`` (ServerApp wrapper), a ``client``
        training loop, or a ``sink``.
    buckets
        Histogram buckets, for histograms only.
    """

    name: str
    type: MetricType
    unit: str
    labels: tuple[str, ...]
    help: str
    side: Side = "server"
    buckets: tuple[float, ...] = ()

    @property
    def sample_names(self) -> tuple[str, ...]:
        """Names of the time series this metric writes to the exposition."""
        if self.type == "histogram":
            return (f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count")
        if self.type == "counter":
            return (self.name, self.name.removesuffix("_total") + "_created")
        return (self.name,)


def _m(
    name: str,
    type_: MetricType,
    help_: str,
    labels: Iterable[str] = (),
    unit: str = "",
    side: Side = "server",
    buckets: tuple[float, ...] = (),
) -> MetricSpec:
    return MetricSpec(name, type_, unit, tuple(labels), help_, side, buckets)


_C = (CLIENT_LABEL,)

CATALOG: tuple[MetricSpec, ...] = (
    # --- run -------------------------------------------------------------------------
    _m("fl_run_info", "gauge", "Run metadata; always 1.",
       ("run_id", "strategy", "flwr_version", "flmon_version")),
    _m("fl_run_active", "gauge", "1 while a run is in progress, 0 once it ended."),
    _m("fl_run_start_timestamp_seconds", "gauge", "Unix time the current run started.",
       unit="seconds"),
    _m("fl_run_end_timestamp_seconds", "gauge", "Unix time the last run ended (0 while running).",
       unit="seconds"),
    _m("fl_run_failures_total", "counter", "Runs that ended with an exception.", ("error",)),
    # --- rounds ----------------------------------------------------------------------
    _m("fl_current_round", "gauge", "Server round in progress or last completed."),
    _m("fl_rounds_planned", "gauge", "Number of rounds the run was started with."),
    _m("fl_rounds_completed_total", "counter", "Rounds completed (train and evaluate done)."),
    _m("fl_round_in_progress", "gauge", "1 while a round is in progress."),
    _m("fl_round_start_timestamp_seconds", "gauge", "Unix time the current round started.",
       unit="seconds"),
    _m("fl_last_round_completed_timestamp_seconds", "gauge",
       "Unix time the last round completed.", unit="seconds"),
    _m("fl_round_duration_seconds", "histogram", "Wall time of a whole round.",
       unit="seconds", buckets=ROUND_DURATION_BUCKETS),
    _m("fl_round_phase_duration_seconds", "gauge",
       "Wall time of the last round's phase (train or evaluate), from configure to aggregate.",
       ("phase",), unit="seconds"),
    # --- participation ---------------------------------------------------------------
    _m("fl_nodes_connected", "gauge", "Nodes the SuperLink reported as connected."),
    _m("fl_clients_selected", "gauge", "Clients sampled in the last round's phase.", ("phase",)),
    _m("fl_clients_replied", "gauge",
       "Clients that replied without error in the last round's phase.",
       ("phase",)),
    _m("fl_clients_failed", "gauge",
       "Clients not aggregated in the last round's phase (failed, no reply, set aside).",
       ("phase",)),
    _m("fl_client_failures_total", "counter",
       "Client failures by phase and Flower error code (node_unavailable, "
       "client_app_raised_exception, ...).", ("phase", CLIENT_LABEL, "error")),
    _m("fl_client_replies_total", "counter", "Replies received, with or without error.",
       ("phase", *_C)),
    _m("fl_client_last_seen_timestamp_seconds", "gauge", "Unix time of the client's last reply.",
       _C, unit="seconds"),
    _m("fl_clients_tracked", "gauge",
       "Clients that have their own label value; the rest are folded into client=\"_other\"."),
    _m("fl_clients_folded_total", "counter",
       "Distinct clients folded into client=\"_other\" by the cardinality cap."),
    # --- updates and examples --------------------------------------------------------
    _m("fl_model_updates_total", "counter", "Model updates received and passed to aggregation.",
       _C),
    _m("fl_client_examples_total", "counter", "Examples reported by clients (num-examples).",
       ("phase", *_C)),
    _m("fl_client_weight_share", "gauge",
       "The client's share of the round's total train weight (its weighted_by_key value, "
       "num-examples for FedAvg, over the sum of the replies aggregated).", _C, unit="ratio"),
    _m("fl_replies_quarantined_total", "counter",
       "Replies set aside before aggregation, by reason (array_records, metric_records, "
       "oversized_metrics, non_finite_metrics, invalid_weight, inconsistent_metric_keys, "
       "inconsistent_metric_types, undecided_metric_keys, outlying_weight, "
       "undecided_weights, inconsistent_array_keys, malformed_arrays, non_finite_arrays); "
       "the round goes on without them.", ("phase", "reason")),
    _m("fl_aggregation_failures_total", "counter",
       "Phases whose aggregation returned nothing or raised.", ("phase",)),
    # --- model quality ---------------------------------------------------------------
    _m("fl_training_accuracy", "gauge", "Aggregated training accuracy of the last round.",
       unit="ratio"),
    _m("fl_training_accuracy_valid", "gauge",
       "1 when the last aggregated training accuracy is a ratio in 0..1, 0 when it is NaN, "
       "infinite or out of range (Datadog's OpenMetrics check drops NaN samples: this "
       "series carries the fact)."),
    _m("fl_training_loss", "gauge", "Aggregated training loss of the last round."),
    _m("fl_evaluation_accuracy", "gauge",
       "Aggregated (distributed) evaluation accuracy of the last round.", unit="ratio"),
    _m("fl_evaluation_loss", "gauge",
       "Aggregated (distributed) evaluation loss of the last round."),
    _m("fl_centralized_accuracy", "gauge",
       "Accuracy of the global model evaluated on the server (evaluate_fn).", unit="ratio"),
    _m("fl_centralized_loss", "gauge", "Loss of the global model evaluated on the server."),
    _m("fl_client_training_accuracy", "gauge", "Training accuracy a client reported.", _C,
       unit="ratio"),
    _m("fl_client_training_loss", "gauge", "Training loss a client reported.", _C),
    _m("fl_client_evaluation_accuracy", "gauge", "Evaluation accuracy a client reported.", _C,
       unit="ratio"),
    _m("fl_client_evaluation_loss", "gauge", "Evaluation loss a client reported.", _C),
    # --- traffic ---------------------------------------------------------------------
    _m("fl_bytes_sent_total", "counter", "Array bytes sent to clients.", ("phase",),
       unit="bytes"),
    _m("fl_bytes_received_total", "counter", "Array bytes received from clients.",
       ("phase", *_C), unit="bytes"),
    # --- client telemetry ------------------------------------------------------------
    _m("fl_client_fit_duration_seconds", "gauge",
       "Time the client's ClientApp spent on the last message (from telemetry).",
       ("phase", *_C), unit="seconds"),
    _m("fl_client_local_epochs", "gauge", "Local epochs the client ran in the last round.", _C),
    _m("fl_client_local_steps", "gauge", "Local steps the client ran in the last round.", _C),
    _m("fl_client_errors_total", "counter",
       "Errors the client's ClientApp raised, as reported in telemetry.", _C),
    _m("fl_telemetry_received_total", "counter", "Telemetry records accepted from clients."),
    _m("fl_telemetry_rejected_total", "counter",
       "Telemetry records or fields dropped as malformed (non_numeric, non_finite, "
       "non_integer, out_of_bounds, unknown_key, oversized, bad_version, not_a_record).",
       ("reason",)),
    # --- security --------------------------------------------------------------------
    _m("fl_client_update_norm", "gauge", "L2 norm of the client's update (its arrays minus "
       "the global arrays it was sent).", _C),
    _m("fl_client_update_cosine_similarity", "gauge",
       "Cosine similarity of the client's update to the round's coordinate-wise median "
       "update (-1..1).", _C),
    _m("fl_client_anomaly_score", "gauge",
       "Largest of the robust z-scores (median/MAD) of the update's norm (high side), "
       "cosine (low side) and claimed weight (log, high side) against the round's "
       "clients.", _C),
    _m("fl_anomalous_updates_total", "counter",
       "Updates whose anomaly score crossed the configured threshold.", _C),
    _m("fl_update_indicators_available", "gauge",
       "1 when per-client update indicators (norm, cosine, anomaly score) are computed; 0 "
       "when they cannot be (secure aggregation: the server sees only the masked sum) or "
       "are turned off."),
    _m("fl_update_norm_median", "gauge", "Median update norm across the last round's clients."),
    _m("fl_dp_epsilon_spent", "gauge", "Differential-privacy epsilon spent so far (accountant)."),
    _m("fl_dp_epsilon_budget", "gauge", "Maximum epsilon the accountant allows (0: unbounded)."),
    _m("fl_dp_budget_exhausted", "gauge",
       "1 once the accountant refused a release that would exceed the epsilon budget."),
    _m("fl_dp_delta", "gauge", "Differential-privacy delta of the accountant."),
    _m("fl_dp_noise_multiplier", "gauge", "Noise multiplier of the DP strategy."),
    _m("fl_dp_clipping_norm", "gauge", "Current clipping norm of the DP strategy."),
    _m("fl_client_dp_epsilon", "gauge", "Local-DP epsilon a client reported spending.", _C),
    _m("fl_security_events_total", "counter", "Security events logged by flmon.", ("kind",)),
    # --- privacy testing (flmon privacy-test) ------------------------------------------
    _m("fl_privacy_attack_auc", "gauge",
       "ROC AUC of a membership-inference attack in flmon privacy-test (0.5: chance). "
       "attack: gradient_decomposition, gradient_alignment or loss_difference on each "
       "client's update as the server receives it, the same name with _release on the "
       "aggregate the server releases; dp: off or on.", ("attack", "dp"), unit="ratio"),
    _m("fl_privacy_attack_advantage", "gauge",
       "Membership advantage max(TPR - FPR) of that attack in flmon privacy-test (0: none).",
       ("attack", "dp"), unit="ratio"),
    # --- sinks -----------------------------------------------------------------------
    _m("fl_sink_dropped_total", "counter",
       "Records a sink gave up on: queue full, retries exhausted, refused for good, or "
       "still queued at its close deadline.", ("sink",),
       side="sink"),
    _m("fl_sink_errors_total", "counter", "Errors a sink met while sending.", ("sink",),
       side="sink"),
    _m("fl_sink_sent_total", "counter", "Records a sink delivered.", ("sink",), side="sink"),
    # --- flmon watch: the SuperLink's Control API (ListNodes, ListRuns) ----------------
    _m("fl_superlink_up", "gauge",
       "1 when the last Control API poll of the SuperLink succeeded, else 0.", side="watch"),
    _m("fl_supernodes", "gauge",
       "SuperNodes per status (registered, online, offline, unregistered).", ("status",),
       side="watch"),
    _m("fl_supernode_online", "gauge",
       "1 while the SuperNode is online, 0 while offline (activated nodes only).", _C,
       side="watch"),
    _m("fl_supernode_heartbeat_age_seconds", "gauge",
       "Seconds since the SuperNode's last heartbeat, as the SuperLink's online_until "
       "implies (activated nodes only).", _C, unit="seconds", side="watch"),
    _m("fl_supernode_replaced", "gauge",
       "1 when the offline SuperNode's place is gone: a node registered after its last "
       "heartbeat took it (a SuperNode restarted without authentication comes back under a "
       "new node id), or the SuperLink no longer lists it (restarted without persistent "
       "state); else 0 (offline nodes only).", _C, side="watch"),
    _m("fl_supernode_heartbeat_interval_seconds", "gauge",
       "Heartbeat interval the SuperNode announced.", _C, unit="seconds", side="watch"),
    _m("fl_runs", "gauge",
       "Runs the SuperLink knows per status (pending, starting, running, completed, failed, "
       "stopped).", ("status",), side="watch"),
    _m("fl_run_running", "gauge",
       "1 for each run the SuperLink reports in progress (starting or running); absent "
       "for every other run, so the series are as many as the runs in progress at once.",
       ("run_id",), side="watch"),
    _m("fl_runs_finished_total", "counter",
       "Runs that finished, by result (completed, failed, stopped); starts at the number "
       "already finished when the watch starts.", ("result",), side="watch"),
    _m("fl_run_duration_seconds", "histogram",
       "Wall time of finished runs from running to finished, by result.", ("result",),
       unit="seconds", side="watch", buckets=RUN_DURATION_BUCKETS),
    _m("fl_run_pending_duration_seconds", "histogram",
       "Time finished runs waited from pending to running, by result.", ("result",),
       unit="seconds", side="watch", buckets=RUN_DURATION_BUCKETS),
    _m("fl_run_transferred_bytes", "histogram",
       "Bytes a finished run moved through the SuperLink, by direction (sent, received).",
       ("direction",), unit="bytes", side="watch", buckets=RUN_BYTES_BUCKETS),
    _m("fl_run_clientapp_runtime_seconds", "histogram",
       "ClientApp runtime summed over the nodes of a finished run, by result.", ("result",),
       unit="seconds", side="watch", buckets=RUN_DURATION_BUCKETS),
    _m("fl_run_oldest_unfinished_age_seconds", "gauge",
       "Age of the oldest unfinished run in a status (pending, starting, running).",
       ("status",), unit="seconds", side="watch"),
    _m("fl_run_last_finished_timestamp_seconds", "gauge",
       "Unix time the last run with this result finished.", ("result",), unit="seconds",
       side="watch"),
    _m("fl_watch_polls_total", "counter", "Control API polls the watch made.", side="watch"),
    _m("fl_watch_poll_errors_total", "counter",
       "Failed Control API polls by reason (unreachable, timeout, tls, http_4xx, http_5xx, "
       "decode, error).", ("reason",), side="watch"),
    _m("fl_watch_poll_duration_seconds", "histogram",
       "Wall time of one Control API poll (ListNodes and ListRuns).", unit="seconds",
       side="watch", buckets=POLL_DURATION_BUCKETS),
    _m("fl_watch_last_poll_success_timestamp_seconds", "gauge",
       "Unix time of the watch's last successful poll.", unit="seconds", side="watch"),
    _m("fl_watch_pushgateway_groups_deleted_total", "counter",
       "Pushgateway groups of ended runs the watch deleted after stale_after.", side="watch"),
    _m("fl_watch_pushgateway_errors_total", "counter",
       "Pushgateway listings or deletions that failed.", side="watch"),
    # --- local training loop (track_training, Keras callback) -------------------------
    _m("fl_local_training_errors_total", "counter", "Local training calls that raised.",
       ("error",), side="client"),
    _m("fl_local_training_duration_seconds", "histogram",
       "Wall time of a local training call (its _count counts the calls).",
       unit="seconds", side="client", buckets=LOCAL_DURATION_BUCKETS),
    _m("fl_local_epochs_total", "counter", "Local epochs completed.", side="client"),
    _m("fl_local_steps_total", "counter", "Local steps (batches) completed.", side="client"),
    _m("fl_local_examples_total", "counter", "Local examples trained on.", side="client"),
    _m("fl_local_training_loss", "gauge", "Last local training loss.", side="client"),
    _m("fl_local_training_accuracy", "gauge", "Last local training accuracy.", unit="ratio",
       side="client"),
)

BY_NAME: dict[str, MetricSpec] = {spec.name: spec for spec in CATALOG}


def get(name: str) -> MetricSpec:
    """Return the spec of ``name``; raise ``KeyError`` naming it when unknown."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"metric {name!r} is not in the flmon catalog") from None


def sample_names() -> frozenset[str]:
    """Every series name the catalog can write (``_bucket``, ``_sum``, ``_created``...)."""
    return frozenset(s for spec in CATALOG for s in spec.sample_names)


def naming_problems(spec: MetricSpec) -> list[str]:
    """Return the ways ``spec`` breaks the Prometheus naming rules (empty when none)."""
    problems: list[str] = []
    if not _NAME_RE.match(spec.name) or "__" in spec.name:
        problems.append(f"{spec.name}: name must match {_NAME_RE.pattern} without '__'")
    if spec.type == "counter" and not spec.name.endswith("_total"):
        problems.append(f"{spec.name}: counters end in _total")
    if spec.type != "counter" and spec.name.endswith("_total"):
        problems.append(f"{spec.name}: only counters end in _total")
    if spec.type == "info" and not spec.name.endswith("_info"):
        problems.append(f"{spec.name}: info metrics end in _info")
    suffix = _UNIT_SUFFIXES.get(spec.unit)
    if suffix is None:
        problems.append(f"{spec.name}: unit {spec.unit!r} is not a base unit")
    elif suffix and suffix not in spec.name:
        problems.append(f"{spec.name}: unit {spec.unit} must appear as {suffix}")
    if spec.unit == "ratio" and ("percent" in spec.name):
        problems.append(f"{spec.name}: ratios are 0..1, not percent")
    if spec.type == "histogram" and not spec.buckets:
        problems.append(f"{spec.name}: histograms need buckets")
    for label in spec.labels:
        if not _LABEL_RE.match(label) or label.startswith("__"):
            problems.append(f"{spec.name}: label {label!r} is not a valid label name")
        if label in {"le", "quantile", "job", "instance"}:
            problems.append(f"{spec.name}: label {label!r} is reserved")
    if not spec.help.strip() or "\n" in spec.help:
        problems.append(f"{spec.name}: help must be one non-empty line")
    return problems


# --- output formats for `flmon metrics` and docs/metrics.md ---------------------------


def as_json() -> str:
    """The catalog as a JSON array, keys sorted."""
    rows = [asdict(spec) for spec in CATALOG]
    return json.dumps(rows, indent=2, sort_keys=True) + "\n"


def as_table() -> str:
    """The catalog as a fixed-width text table."""
    header = ("NAME", "TYPE", "UNIT", "LABELS", "SIDE")
    rows = [
        (s.name, s.type, s.unit or "-", ",".join(s.labels) or "-", s.side) for s in CATALOG
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(col.ljust(w) for col, w in zip(r, widths, strict=True)).rstrip()
             for r in [header, *rows]]
    return "\n".join(lines) + "\n"


def as_markdown() -> str:
    """The catalog as the Markdown page ``docs/metrics.md``."""
    out = [
        "<!-- generated from flmon/catalog.py by `flmon metrics --format markdown` "
        "(run `make render`), do not edit -->",
        "# Metric catalog",
        "",
        "Every metric flmon exports. `client` label values are bounded by the server's "
        "cardinality cap (`max_client_labels`): clients beyond it share `client=\"_other\"`.",
        "",
        "| name | type | unit | labels | side | help |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for s in CATALOG:
        labels = ", ".join(f"`{label}`" for label in s.labels) or "-"
        help_text = s.help.replace("|", "\\|")
        out.append(
            f"| `{s.name}` | {s.type} | {s.unit or '-'} | {labels} | {s.side} | {help_text} |"
        )
    return "\n".join(out) + "\n"
