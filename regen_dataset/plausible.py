"""What a review's rating and time may be, checked the same way by every reader.

A rating is a whole number of stars from 1 to 5 (`4.0` is fine, `4.5` and `9` are not). A time is
unix seconds between 1995 (Amazon's first reviews) and 2030: a value a thousand times too large is
milliseconds, and anything else outside the range is a different unit or a corrupt value. Both
are errors, never repaired, since no repair is certain.
"""

from __future__ import annotations

import datetime
import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

MIN_RATING, MAX_RATING = 1, 5
EARLIEST_TIME = int(datetime.datetime(1995, 1, 1, tzinfo=datetime.timezone.utc).timestamp())
LATEST_TIME = int(datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc).timestamp())


def _is_finite_number(value) -> bool:
    """An int (of any size: `math.isfinite` overflows on a huge one) or a finite float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, int) or math.isfinite(value)


def rating_problem(value) -> str | None:
    """Why a rating is not a whole number of stars from 1 to 5, or None."""
    if not _is_finite_number(value):
        return f"expected a number, got {type(value).__name__} {value!r:.40}"
    if value % 1 or not MIN_RATING <= value <= MAX_RATING:
        return f"expected a whole number from {MIN_RATING} to {MAX_RATING}, got {value!r:.40}"
    return None


def time_problem(value) -> str | None:
    """Why a time is not plausible unix seconds, or None."""
    if not _is_finite_number(value):
        return f"expected unix seconds, got {type(value).__name__} {value!r:.40}"
    if EARLIEST_TIME <= value <= LATEST_TIME:
        return None
    message = f"expected unix seconds from 1995 to 2030, got {value!r:.40}"
    if EARLIEST_TIME * 1000 <= value <= LATEST_TIME * 1000:
        message += ", which looks like milliseconds"
    return message


def bad_ratings(ratings: pa.Array) -> np.ndarray:
    """Which ratings (float or integer) break `rating_problem`; nulls are not judged here."""
    ratings = pc.cast(ratings, pa.float64(), safe=False)  # an int beyond 2**53: approximately
    if plainly_within(ratings, MIN_RATING, MAX_RATING, whole=True):
        return np.zeros(len(ratings), dtype=bool)
    bad = pc.or_(
        pc.invert(pc.is_finite(ratings)),
        pc.or_(pc.not_equal(pc.floor(ratings), ratings), pc.less(ratings, MIN_RATING)),
    )
    bad = pc.or_(bad, pc.greater(ratings, MAX_RATING))
    return pc.fill_null(bad, False).to_numpy(zero_copy_only=False)


def bad_times(times: pa.Array) -> np.ndarray:
    """Which times break `time_problem`; nulls are not judged here."""
    times = pc.cast(times, pa.float64(), safe=False)  # nanoseconds (beyond 2**53): approximately
    if plainly_within(times, EARLIEST_TIME, LATEST_TIME):
        return np.zeros(len(times), dtype=bool)
    bad = pc.or_(pc.invert(pc.is_finite(times)), pc.less(times, EARLIEST_TIME))
    bad = pc.or_(bad, pc.greater(times, LATEST_TIME))
    return pc.fill_null(bad, False).to_numpy(zero_copy_only=False)


def plainly_within(values: pa.Array, low: float, high: float, *, whole: bool = False) -> bool:
    """Whether every non-null float is finite, within [low, high] (and whole): a few reductions,
    so that clean blocks (nearly all of them) skip the element-wise masks."""
    if pc.all(pc.is_finite(values)).as_py() is False:  # min_max would not see a NaN
        return False
    extremes = pc.min_max(values)
    smallest, largest = extremes["min"].as_py(), extremes["max"].as_py()
    if smallest is not None and (smallest < low or largest > high):
        return False
    return not whole or pc.all(pc.equal(pc.floor(values), values)).as_py() is not False
