from __future__ import annotations

from array import array

import pytest

from lab.loadconn import served_in


def spans(*pairs: tuple[float, float]) -> array[float]:
    return array("d", [t for pair in pairs for t in pair])


def test_answers_inside_the_window_count_whole() -> None:
    assert served_in(spans((1.0, 1.5), (1.5, 2.0)), 1.0, 3.0) == 2.0


def test_answers_crossing_an_edge_count_their_share_inside() -> None:
    # Started in the warm-up, a quarter inside; started in the window, ended a quarter past it.
    assert served_in(spans((0.0, 0.4), (0.3, 0.7)), 0.3, 0.6) == pytest.approx(0.25 + 0.75)


def test_answers_outside_the_window_count_nothing() -> None:
    assert served_in(spans((0.0, 0.3), (0.6, 0.9)), 0.3, 0.6) == 0.0


def test_a_busy_connection_counts_the_window_over_its_hold_time_whatever_the_phase() -> None:
    # One connection answering every 0.5 s: a 3 s window holds 6 answers' worth wherever its
    # edges fall, where a count of the requests started in it gives 6 or 7.
    for phase in (0.0, 0.1, 0.25, 0.49):
        answers = spans(*((phase + 0.5 * k, phase + 0.5 * (k + 1)) for k in range(12)))
        assert served_in(answers, 1.0, 4.0) == pytest.approx(6.0)


def test_an_instant_answer_counts_when_it_is_inside() -> None:
    assert served_in(spans((1.0, 1.0), (5.0, 5.0)), 0.5, 2.0) == 1.0
