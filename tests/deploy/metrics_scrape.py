"""Scraping a real metrics endpoint in tests: status, and the samples parsed by prometheus_client."""

from __future__ import annotations

import http.client
import urllib.parse

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[str, list[tuple[dict[str, str], float]]]  # sample name -> (labels, value) of each series


def get(url: str, *, source: str | None = None, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """GET ``url`` over a real connection, from ``source`` (a local address) if given."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(
        parts.hostname, parts.port, timeout=20, source_address=(source, 0) if source else None
    )
    try:
        conn.request("GET", parts.path or "/", headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def scrape(url: str) -> Samples:
    status, text = get(url)
    assert status == 200, f"{url}: {status} {text[:300]}"
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    """The sum of ``name``'s series whose labels include ``labels``; None if there is none."""
    found = [v for sample_labels, v in samples.get(name, []) if labels.items() <= sample_labels.items()]
    return sum(found) if found else None
