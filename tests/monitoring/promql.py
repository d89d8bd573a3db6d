"""Metric names: those the chat service exports, and those a PromQL expression reads."""

import re

from prometheus_client.metrics import MetricWrapperBase

# Sample names per metric type, from a family name (prometheus_client's exposition).
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
}
KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "offset", "bool", "atan2", "inf", "nan",
}  # fmt: skip


def exported():
    """{family name: type} of every metric in services/chat/chat/metrics.py."""
    from chat import metrics

    families = {}
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            for family in value.describe():
                families[family.name] = family.type
    return families


def exported_samples():
    """Every sample name the service's /metrics can show for its own metrics."""
    return {name + s for name, kind in exported().items() for s in SUFFIXES[kind]}


def metric_names(expr):
    """Metric names an expression selects: identifiers that are no function, keyword or label."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values, strings
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges, subqueries, Grafana's $__rate_interval
    # Label lists of grouping and matching clauses; `sum by (le) (x)` becomes `sum (x)`.
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = re.findall(r"(?<![\w.$])([a-zA-Z_:][\w:]*)\b(?!\s*\()", expr)
    return {n for n in names if n.lower() not in KEYWORDS}
