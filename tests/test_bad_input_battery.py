"""The bad-input battery (tests/bad_input_battery.py): none of its bad inputs becomes a number, >= 95% get a clear error."""

from bad_input_battery import run


def test_no_bad_input_is_silent_and_at_least_95_percent_get_a_clear_error():
    out = run()
    not_clear = [(family, case, msg) for family, case, kind, msg in out["rows"] if kind != "clear"]
    assert out["silent"] == 0, not_clear
    assert out["clear"] >= 0.95 * out["total"], not_clear
