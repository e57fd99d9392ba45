"""The network fault proxy's fault settings and the seeded draw of each connection's fate: pure logic
(`chaos.netproxy.faults`); the proxy itself is tested on real sockets in tests/resilience."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chaos.netproxy.faults import Fate, Faults, draw_fate, fate_rng


def test_defaults_are_no_faults_at_all() -> None:
    faults = Faults()
    assert draw_fate(faults, random.Random(0)) == Fate("pass", 0)
    assert Faults.from_mapping({}) == faults


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"latency": -0.1}, "latency"),
        ({"jitter": -1}, "jitter"),
        ({"bandwidth": -5}, "bandwidth"),
        ({"stall": 1.5}, "stall"),
        ({"reset": -0.1}, "reset"),
        ({"stall": 0.5, "reset": 0.4, "cut": 0.2}, "add up"),
        ({"after": (10, 5)}, "after"),
        ({"after": (-1, 5)}, "after"),
    ],
)
def test_impossible_settings_are_refused_naming_the_field(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Faults.from_mapping(fields)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"bogus": 1}, "unknown fault setting 'bogus'"),
        ({"latency": "fast"}, "latency"),
        ({"blackhole": 1}, "blackhole"),
        ({"bandwidth": 1.5}, "bandwidth"),
        ({"after": [1, 2, 3]}, "after"),
        ({"after": True}, "after"),
        ({"stall": None}, "stall"),
    ],
)
def test_mappings_of_the_wrong_shape_are_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Faults.from_mapping(fields)


def test_after_may_be_one_number_or_a_range() -> None:
    assert Faults.from_mapping({"after": 7}).after == (7, 7)
    assert Faults.from_mapping({"after": [3, 9]}).after == (3, 9)


@given(
    st.builds(
        Faults,
        latency=st.floats(0, 10),
        jitter=st.floats(0, 10),
        bandwidth=st.integers(0, 10**9),
        stall=st.floats(0, 0.3),
        reset=st.floats(0, 0.3),
        cut=st.floats(0, 0.3),
        after=st.tuples(st.integers(0, 1000), st.integers(0, 1000)).map(sorted).map(tuple),
        blackhole=st.booleans(),
    )
)
def test_settings_go_through_json_unchanged(faults: Faults) -> None:
    assert Faults.from_mapping(json.loads(json.dumps(faults.to_mapping()))) == faults


def test_a_certain_fault_always_happens_after_a_count_within_its_range() -> None:
    rng = random.Random(1)
    fates = [draw_fate(Faults(cut=1.0, after=(10, 20)), rng) for _ in range(200)]
    assert {fate.kind for fate in fates} == {"cut"}
    assert {fate.after for fate in fates} == set(range(10, 21))


def test_fates_come_in_proportion_to_their_probabilities() -> None:
    rng = random.Random(2)
    faults = Faults(stall=0.1, reset=0.2, cut=0.3)
    kinds = Counter(draw_fate(faults, rng).kind for _ in range(10_000))
    for kind, share in [("stall", 0.1), ("reset", 0.2), ("cut", 0.3), ("pass", 0.4)]:
        assert abs(kinds[kind] / 10_000 - share) < 0.03, kinds


def test_each_connection_has_its_own_seeded_stream_of_draws() -> None:
    faults = Faults(stall=0.25, reset=0.25, cut=0.25, after=(0, 1000))
    first = [draw_fate(faults, fate_rng(4, number)) for number in range(50)]
    again = [draw_fate(faults, fate_rng(4, number)) for number in reversed(range(50))]
    other = [draw_fate(faults, fate_rng(5, number)) for number in range(50)]
    assert first == list(reversed(again)), "a connection's fate does not depend on the others' draws"
    assert first != other
