"""Property-based tests of the parsers: participants.tsv, BIDS filter files, timeseries TSVs
and numeric command-line options (hypothesis, few examples each)."""

from __future__ import annotations

import json
import string
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from xaibids.cli.command import parse_args
from xaibids.errors import XaibidsError
from xaibids.fileio import read_timeseries_tsv, write_timeseries_tsv
from xaibids.inputs.checks import read_participants
from xaibids.inputs.layout import DEFAULT_QUERIES, load_bids_filters

SETTINGS = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
WORD = st.text(string.ascii_letters + string.digits, min_size=1, max_size=8)
NAME = st.builds(lambda a, b: a + b, st.sampled_from(string.ascii_letters),
                 st.text(string.ascii_letters + string.digits + "-_", max_size=10))


@SETTINGS
@given(labels=st.lists(WORD, min_size=1, max_size=8, unique=True),
       values=st.lists(st.one_of(WORD, st.just("n/a")), min_size=8, max_size=8))
def test_participants_roundtrip(labels, values):
    with tempfile.TemporaryDirectory() as tmp:
        table = pd.DataFrame({"participant_id": [f"sub-{s}" for s in labels],
                              "group": values[:len(labels)]})
        table.to_csv(Path(tmp) / "participants.tsv", sep="\t", index=False)
        got = read_participants(Path(tmp))
    assert got.index.tolist() == [f"sub-{s}" for s in labels]
    for value, read in zip(values, got["group"]):
        assert (pd.isna(read) if value == "n/a" else read == value)


@SETTINGS
@given(content=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
def test_participants_garbage_is_a_clean_error(content):
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "participants.tsv").write_bytes(content)
        try:
            got = read_participants(Path(tmp))
        except XaibidsError as err:
            assert "participants.tsv" in str(err)
        else:
            assert got.index.name == "participant_id"


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)


@SETTINGS
@given(obj=st.one_of(JSON, st.dictionaries(st.sampled_from(sorted(DEFAULT_QUERIES) + ["func"]),
                                           st.dictionaries(WORD, JSON, max_size=3), max_size=3)))
def test_bids_filters_accept_or_refuse_clearly(obj):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "filter.json"
        path.write_text(json.dumps(obj))
        try:
            filters = load_bids_filters(path)
        except XaibidsError as err:
            assert str(path) in str(err)
        else:
            assert filters == obj
            assert set(filters) <= set(DEFAULT_QUERIES)
            assert all(isinstance(v, dict) for v in filters.values())


@SETTINGS
@given(text=st.text(max_size=100))
def test_bids_filters_random_text(text):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "filter.json"
        path.write_text(text)
        try:
            load_bids_filters(path)
        except XaibidsError as err:
            assert str(path) in str(err)


FLOATS = st.one_of(st.floats(min_value=-1e30, max_value=1e30), st.just(float("nan")))


@SETTINGS
@given(names=st.lists(NAME, min_size=1, max_size=5, unique=True), n_rows=st.integers(1, 6),
       data=st.data())
def test_timeseries_tsv_roundtrip(names, n_rows, data):
    values = np.array(data.draw(st.lists(st.lists(FLOATS, min_size=len(names),
                                                  max_size=len(names)),
                                         min_size=n_rows, max_size=n_rows)), dtype=float)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_timeseries_tsv(values, names, Path(tmp) / "x_timeseries.tsv")
        back = read_timeseries_tsv(path)
        assert sorted(p.name for p in Path(tmp).iterdir()) == ["x_timeseries.tsv"]
    assert list(back.columns) == names
    np.testing.assert_allclose(back.to_numpy(), values, rtol=1e-7, atol=0, equal_nan=True)


POSITIVE = {"--n-folds": ("learning", "n_folds"), "--n-models": ("learning", "n_models"),
            "--epochs": ("learning", "epochs"), "--n-bootstrap": ("statistics", "n_bootstrap")}
NON_NEGATIVE = {"--random-seed": ("seeds", "random_seed"),
                "--permutations": ("attribution", "permutations")}
FRACTIONS = {"--min-coverage": ("workflow", "min_coverage"),
             "--fdr-alpha": ("statistics", "fdr_alpha")}
ARGS = ["/data/bids", "/data/out", "group"]


def _value(config, where):
    return getattr(getattr(config, where[0]), where[1])


@SETTINGS
@given(option=st.sampled_from(sorted(POSITIVE)), value=st.integers(1, 10**6))
def test_positive_ints_roundtrip(option, value):
    config, _ = parse_args([*ARGS, option, str(value)])
    assert _value(config, POSITIVE[option]) == value


@SETTINGS
@given(option=st.sampled_from(sorted(NON_NEGATIVE)), value=st.integers(0, 2**31))
def test_non_negative_ints_roundtrip(option, value):
    config, _ = parse_args([*ARGS, option, str(value)])
    assert _value(config, NON_NEGATIVE[option]) == value


@SETTINGS
@given(option=st.sampled_from(sorted(FRACTIONS)), value=st.floats(0, 1))
def test_fractions_roundtrip(option, value):
    config, _ = parse_args([*ARGS, option, repr(value)])
    assert _value(config, FRACTIONS[option]) == value


INVALID = st.one_of(
    st.tuples(st.sampled_from(sorted(POSITIVE)), st.integers(max_value=0).map(str)),
    st.tuples(st.sampled_from(sorted(NON_NEGATIVE)), st.integers(max_value=-1).map(str)),
    st.tuples(st.sampled_from(sorted(FRACTIONS)),
              st.one_of(st.floats(min_value=1, exclude_min=True, allow_infinity=True),
                        st.floats(max_value=0, exclude_max=True, allow_infinity=True),
                        st.just(float("nan"))).map(repr)),
    st.tuples(st.sampled_from(sorted({**POSITIVE, **NON_NEGATIVE, **FRACTIONS})),
              st.text(string.ascii_letters, min_size=1, max_size=6)
              .filter(lambda t: t.lower() not in ("nan", "inf", "infinity"))),
)


@SETTINGS
@given(case=INVALID)
def test_invalid_numbers_are_usage_errors(case, capsys):
    option, text = case
    with pytest.raises(SystemExit) as exc:
        parse_args([*ARGS, f"{option}={text}"])
    assert exc.value.code == 2
    assert option in capsys.readouterr().err
