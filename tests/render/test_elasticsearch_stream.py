"""The Elasticsearch sink writes where the rendered index template and ILM policy apply."""

from __future__ import annotations

import fnmatch
from pathlib import Path

from flmon.config import load_config
from flmon.render.elasticsearch import ilm_policy, index_template
from flmon.sinks.elasticsearch import ElasticsearchConfig

ROOT = Path(__file__).resolve().parents[2]


def test_default_sink_index_is_a_data_stream_of_the_rendered_template() -> None:
    cfg = load_config(ROOT / "examples" / "flmon.yaml")
    template = index_template(cfg)
    index = ElasticsearchConfig().index
    assert any(fnmatch.fnmatch(index, p) for p in template["index_patterns"]), index
    # ILM rollover needs a data stream (or a rollover alias, which flmon does not set)
    assert template["data_stream"] == {}
    assert "rollover" in ilm_policy(cfg)["policy"]["phases"]["hot"]["actions"]
    assert template["template"]["mappings"]["properties"]["@timestamp"]["type"] == "date"
