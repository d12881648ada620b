from __future__ import annotations

import math

import pytest

from lab.bench import AgreementRow, HeadroomRow, cell_ratio, order, parse_wrk, summarise
from lab.errors import LabError

WRK_OUTPUT = """Running 3s test @ http://127.0.0.1:40000/?ms=0
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   210.31us   80.02us   3.10ms   90.00%
    Req/Sec    35.20k     1.10k   36.90k    70.00%
  Latency Distribution
     50%  202.00us
     75%  231.00us
     90%  270.00us
     99%  512.00us
  105123 requests in 3.00s, 29.18MB read
Requests/sec:  35041.00
Transfer/sec:      9.73MB
"""


def test_wrk_output_gives_rate_request_count_and_median() -> None:
    rate, count, p50 = parse_wrk(WRK_OUTPUT)
    assert (rate, count) == (35041.0, 105123) and p50 == pytest.approx(0.202)
    slow = WRK_OUTPUT.replace("50%  202.00us", "50%  1.50s")
    assert parse_wrk(slow)[2] == pytest.approx(1500.0)


def test_wrk_output_without_a_rate_is_an_error_quoting_it() -> None:
    with pytest.raises(LabError, match="wrk printed no request rate: 'unable to connect"):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_wrk_without_latency_distribution_has_no_median() -> None:
    rate, count, p50 = parse_wrk("  10 requests in 1.00s, 1KB read\nRequests/sec:     10.00\n")
    assert (rate, count) == (10.0, 10) and math.isnan(p50)


def test_the_tool_that_goes_first_alternates_every_round() -> None:
    assert [order(r) for r in range(4)] == [
        ("lab.load", "wrk"),
        ("wrk", "lab.load"),
        ("lab.load", "wrk"),
        ("wrk", "lab.load"),
    ]


def _row(tool: str, conns: int, round_: int, rate: float, cpu: float) -> HeadroomRow:
    return HeadroomRow(
        tool=tool,
        connections=conns,
        round=round_,
        rate_rps=rate,
        client_cpu_us_per_req=cpu,
        responder_cpu_us_per_req=cpu * 2,
        p50_ms=0.1 * round_,
    )


def test_headroom_summary_is_the_median_and_range_over_rounds() -> None:
    rows = [
        _row("wrk", 8, 1, 30_000, 8.0),
        _row("lab.load", 8, 1, 20_000, 20.0),
        _row("lab.load", 8, 2, 10_000, 60.0),  # a drifting round: the median ignores it
        _row("wrk", 8, 2, 32_000, 7.0),
        _row("lab.load", 8, 3, 21_000, 18.0),
        _row("wrk", 8, 3, 31_000, 9.0),
        _row("lab.load", 1, 1, 5_000, 30.0),
    ]
    summary = summarise(rows)
    assert [(s.tool, s.connections) for s in summary] == [("lab.load", 1), ("lab.load", 8), ("wrk", 8)]
    lab8 = summary[1]
    assert (lab8.rounds, lab8.rate_rps, lab8.rate_range) == (3, 20_000, (10_000, 21_000))
    assert (lab8.client_cpu_us_per_req, lab8.client_cpu_range) == (20.0, (18.0, 60.0))
    assert lab8.responder_cpu_us_per_req == 40.0 and lab8.p50_ms == pytest.approx(0.2)


def _cell(round_: int, lab: float, wrk: float) -> list[AgreementRow]:
    return [
        AgreementRow(tool="lab.load", round=round_, rate_rps=lab, p50_ms=1.0, client_cpu_us_per_req=15.0),
        AgreementRow(tool="wrk", round=round_, rate_rps=wrk, p50_ms=1.0, client_cpu_us_per_req=12.0),
    ]


def test_cell_ratio_is_paired_by_round() -> None:
    # The machine drifts by 2x between rounds; within each round the tools agree within 2%.
    rows = _cell(1, 98, 100) + _cell(2, 204, 200) + _cell(3, 99, 100)
    ratio = cell_ratio(rows)
    assert ratio.per_round == pytest.approx((0.98, 1.02, 0.99))
    assert ratio.median == pytest.approx(0.99) and ratio.within_target


def test_cell_ratio_outside_the_target() -> None:
    ratio = cell_ratio(_cell(1, 88, 100) + _cell(2, 90, 100))
    assert ratio.median == pytest.approx(0.89) and not ratio.within_target


def test_cell_ratio_needs_both_tools_in_a_round() -> None:
    with pytest.raises(LabError, match="no round measured both"):
        cell_ratio(_cell(1, 90, 100)[:1])
