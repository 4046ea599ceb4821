"""Correctly rounded sums, means and standard deviations of many equal-length rows at once.

``probe.stats`` defines a train's mean and mdev with ``statistics.mean`` / ``pstdev`` (exact
rational arithmetic, then one rounding) and its IPDV with ``math.fsum``: figures that do not
depend on summation order. numpy's sums do, by an ulp now and then, and the engine must give the
same numbers as the Python path. So each row is carried in double-double (error-free
transformations: Knuth's TwoSum, Dekker's TwoProduct) with a rigorous error bound, rounded once,
and *certified*: a result is returned only where the bound proves the rounding is the one the
exact value gets. A row too close to a rounding boundary (an exact tie, say) or outside the
safe exponent range comes back uncertain, for the caller to compute in Python. In practice that
is a row in many millions, plus short rows whose mean is an exact tie.

Every function takes ``x`` of shape (rows, n), n ≥ 1, and returns ``(value, certain)``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]
Flags = NDArray[np.bool_]

_U = 2.0**-53  # unit roundoff
_SPLIT = 134217729.0  # 2^27 + 1: Dekker's splitter
_TINY, _HUGE = 2.0**-300, 2.0**300  # squares and their errors stay normal, splits finite
_SLACK = 2.0**-96  # relative allowance for the few roundings the bounds below do not itemise


def _two_sum(a: F64, b: F64) -> tuple[F64, F64]:
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _split(a: F64) -> tuple[F64, F64]:
    c = _SPLIT * a
    high = c - (c - a)
    return high, a - high


def _two_prod(a: F64, b: F64) -> tuple[F64, F64]:
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def _gamma2(n: int) -> float:
    """γₙ², γₙ = n·u / (1 − n·u): the second-order error of a compensated sum of n terms."""
    g = n * _U / (1 - n * _U)
    return g * g


def _sum2(x: F64) -> tuple[F64, F64, F64, Flags]:
    """Ogita–Rump–Oishi Sum2 of each row, left unevaluated: (s, t) with |s + t − Σx| ≤ bound,
    and whether s + t is Σx exactly (the errors summed without rounding: ties are then
    decided as IEEE decides them, half to even, by one rounding of s + t)."""
    s = x[:, 0].copy()
    t = np.zeros_like(s)
    exact = np.ones(len(s), np.bool_)
    for j in range(1, x.shape[1]):
        s, e = _two_sum(s, x[:, j])
        t, lost = _two_sum(t, e)
        exact &= lost == 0
    bound = np.where(exact, 0.0, 2 * _gamma2(x.shape[1]) * np.abs(x).sum(axis=1))
    return s, t, bound, exact


def _divide(s: F64, t: F64, n: float) -> tuple[F64, F64, F64]:
    """(s + t) / n in double-double (q, r) and the error it adds."""
    q = s / n
    p, pe = _two_prod(q, np.full_like(q, n))
    rest = ((s - p) - pe) + t  # s − p is exact (Sterbenz): only the last two additions round
    return q, rest / n, 4 * _U * (np.abs(s - p) + np.abs(pe) + np.abs(t)) / n


def _round(high: F64, low: F64, bound: F64) -> tuple[F64, F64, Flags]:
    """Round high + low ± bound to the nearest double: (value, error of it, certain)."""
    c, e = _two_sum(high, low)
    up = (np.nextafter(c, np.inf) - c) / 2
    down = (c - np.nextafter(c, -np.inf)) / 2
    margin = 2 * bound + _SLACK * np.abs(c)
    certain = (up - e > margin) & (e + down > margin) & np.isfinite(c)
    return c, e, certain


def _safe(x: F64) -> Flags:
    """Rows whose every value keeps the transformations above exact (no overflow, no
    subnormal error terms)."""
    a = np.abs(x)
    safe: Flags = ((a < _HUGE) & ((a > _TINY) | (a == 0))).all(axis=1)
    return safe


def fsum_rows(x: F64) -> tuple[F64, Flags]:
    """``math.fsum`` of each row."""
    s, t, bound, exact = _sum2(x)
    value, _, certain = _round(s, t, bound)
    return value, (certain | exact) & _safe(x)


def mean_rows(x: F64) -> tuple[F64, Flags]:
    """``statistics.mean`` of each row."""
    value, _, _, certain = _mean(x)
    return value, certain & _safe(x)


def _mean(x: F64) -> tuple[F64, F64, F64, Flags]:
    """The rounded mean, δ ≈ μ − mean and the bound on |δ − (μ − mean)|, and certain."""
    s, t, bound, exact = _sum2(x)
    n = float(x.shape[1])
    q, r, extra = _divide(s, t, n)
    err = bound / n + extra + _U * np.abs(r)
    value, _, certain = _round(q, r, err)
    value, proven = _settle(value, s, t, n)
    certain |= proven & exact
    delta = (q - value) + r
    return value, delta, err + 2 * _U * np.abs(delta), certain


def _settle(c: F64, s: F64, t: F64, n: float) -> tuple[F64, Flags]:
    """Where S = s + t is exact, decide RN(S / n) exactly from the residual R = S − c·n:
    c is it when |R| is under n half-gaps (a tie goes to the even neighbour)."""
    p, pe = _two_prod(c, np.full_like(c, n))
    a, l0 = _two_sum(s, -p)
    b, l1 = _two_sum(a, -pe)
    rest, l2 = _two_sum(b, t)
    known = (l0 == 0) & (l1 == 0) & (l2 == 0) & np.isfinite(rest)
    up = (np.nextafter(c, np.inf) - c) / 2 * n
    down = (c - np.nextafter(c, -np.inf)) / 2 * n
    odd = (c.view(np.int64) & 1) == 1
    c = np.where(known & odd & (rest == up), np.nextafter(c, np.inf), c)
    c = np.where(known & odd & (rest == -down), np.nextafter(c, -np.inf), c)
    inside = (rest <= up) & (rest >= -down)
    return c, known & inside


def pstdev_rows(x: F64) -> tuple[F64, Flags]:
    """``statistics.pstdev`` of each row: √(Σ(x − μ)² / n), μ the exact mean."""
    n = x.shape[1]
    if n == 2:  # √(((a − b) / 2)²): |a − b| rounded once (IEEE subtraction), halved exactly
        return np.abs(x[:, 0] - x[:, 1]) / 2, _safe(x)
    mean, delta, delta_err, _ = _mean(x)  # any nearby mean does: δ carries the rest
    dh, dl = _two_sum(x, -mean[:, None])  # x − mean, exactly
    sh, sl = _two_prod(dh, dh)
    low = sl + 2 * dh * dl  # + dl², in the bound
    s, t, bound, _ = _sum2(sh)
    t = t + low.sum(axis=1)
    bound += 4 * _gamma2(n + 2) ** 0.5 * (np.abs(low).sum(axis=1) + np.abs(t)) + 2 * (dl * dl).sum(
        axis=1
    )
    # Σ(x − μ)² = Σ(x − mean)² − n·δ², δ = μ − mean
    shift = n * delta * delta
    bound += n * (2 * np.abs(delta) * delta_err + delta_err * delta_err) + 4 * _U * shift
    t = t - shift
    bound += 2 * _U * np.abs(t)
    vh, vl, extra = _divide(s, t, float(n))
    v_err = bound / n + extra + _U * np.abs(vl)
    with np.errstate(invalid="ignore", divide="ignore"):
        yh = np.sqrt(vh)
        p, pe = _two_prod(yh, yh)
        yl = (((vh - p) - pe) + vl) / (2 * yh)
        y_err = v_err / (2 * yh) + 4 * _U * np.abs(yl)
        value, _, sure = _round(yh, yl, y_err)
    exact_zero = ((dh == 0) & (dl == 0)).all(axis=1)  # every value equals the mean: 0.0
    value = np.where(exact_zero, 0.0, value)
    return value, ((sure & (vh > 0)) | exact_zero) & _safe(x)
