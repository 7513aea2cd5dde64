"""Human sizes (1024-based with i, 1000-based without) and durations in seconds."""

import pytest

from sandbox.policy import parse_duration, parse_size


@pytest.mark.parametrize("value,expected", [
    (1024, 1024), ("1KiB", 1024), ("1kB", 1000), ("512MiB", 512 * 1024**2), ("8GiB", 8 * 1024**3),
    ("100MB", 100 * 1000**2), ("1.5GB", 1_500_000_000), ("64 MiB", 64 * 1024**2), ("1k", 1000), ("1Ki", 1024), ("1.5GiB", int(1.5 * 1024**3)), ("2TiB", 2 * 1024**4), ("10", 10), (3.0, 3),
])
def test_sizes(value, expected):
    assert parse_size(value) == expected


@pytest.mark.parametrize("bad", ["lots", "-5MiB", "1XB", True, None, 1.5, "", float("inf"), "8 GiB extra", [1]])
def test_bad_sizes(bad):
    with pytest.raises(ValueError):
        parse_size(bad)


@pytest.mark.parametrize("value,expected", [(30, 30.0), (1.5, 1.5), ("30s", 30.0), ("5m", 300.0), ("2h", 7200.0),
                                            ("250ms", 0.25), ("7", 7.0)])
def test_durations(value, expected):
    assert parse_duration(value) == expected


@pytest.mark.parametrize("bad", ["soon", "5d", False, None, float("inf"), float("nan"), "-5s"])
def test_bad_durations(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)
