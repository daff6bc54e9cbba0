"""``mempolicy check --replay`` on schedule files of any shape: a valid one replays, anything
else is one line ``FILE:LINE: message`` on stderr and exit status 2, never a traceback."""

from __future__ import annotations

import json
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mempolicy.check.cli import main

VALID = {"version": 1, "scenario": "exit-vs-numa-maps", "protocol": "current", "mutants": [],
         "lockdep": True, "schedule": [0, 1], "finding": None}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


def _run(tmp_path, capsys, text: str) -> tuple[int, str]:
    path = tmp_path / "s.json"
    path.write_text(text, encoding="utf-8")
    rc = main(["--replay", str(path)])
    return rc, capsys.readouterr().err


def _one_line(err: str, path_re: str = r".*s\.json:\d+: ") -> None:
    assert err.count("\n") == 1 and "Traceback" not in err
    assert re.match(r"mempolicy check: " + path_re, err), err


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(sorted(VALID) + ["tasks", "found_by"]), value=json_values)
def test_one_field_of_any_shape(tmp_path, capsys, key, value):
    data = dict(VALID)
    data[key] = value
    rc, err = _run(tmp_path, capsys, json.dumps(data))
    assert rc in (0, 1, 2)
    if rc == 2:
        _one_line(err)
    else:
        assert err == ""


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=json_values)
def test_any_json_document(tmp_path, capsys, value):
    rc, err = _run(tmp_path, capsys, json.dumps(value))
    assert rc == 2 or isinstance(value, dict)
    if rc == 2:
        _one_line(err)


def test_deeply_nested_json_is_one_line(tmp_path, capsys):
    rc, err = _run(tmp_path, capsys, "[" * 200_000 + "]" * 200_000)
    assert rc == 2
    _one_line(err)
    assert "nested too deeply" in err


def test_the_line_of_the_bad_field_is_named(tmp_path, capsys):
    data = dict(VALID, scenario=["a", "list"])
    rc, err = _run(tmp_path, capsys, json.dumps(data, indent=1))
    assert rc == 2
    line = json.dumps(data, indent=1).splitlines().index(' "scenario": [') + 1
    assert f"s.json:{line}: unknown scenario" in err


def test_the_valid_document_replays(tmp_path, capsys):
    rc, err = _run(tmp_path, capsys, json.dumps(VALID))
    assert rc == 0 and err == ""
