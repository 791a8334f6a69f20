"""Local (patch) motion: a field smooth in space and time on top of the global shifts.

After the global alignment the frames are cut into overlapping patches on an
``n_x`` x ``n_y`` grid (each patch about twice the grid spacing wide, so neighbours overlap
by half), and each patch's frames are aligned by the same frame-against-the-others scheme
as the whole movie (:mod:`~dedkit.frames.align.motion`), in running groups of frames and
without smoothing: each patch yields a noisy residual trajectory beyond the global shift.

The field is fitted to all those trajectories at once: in space a tensor-product cubic
B-spline with ``n_x + 2`` x ``n_y + 2`` control points per frame (knots one grid spacing
apart, one beyond each edge) with a penalty on the control points' second differences
(a thin-plate-like stiffness chosen by Mallows' Cp, with the measurement noise estimated
from the trajectories themselves); in time the four smoothest modes (what MotionCor2's
cubic in time spans). MotionCor2 fits a quadratic polynomial in space instead; fitted to
the true field of the validation's deformations (one cycle across the frame) at the 5 x 5
patch centres, a quadratic leaves as much error as no local model at all (0.5-0.7 pixel),
the spline 0.06-0.16 pixel. The field has zero mean over the frames at every position,
like the global shifts, and its values are in pixels of the frames it was fitted on;
:meth:`LocalMotion.scaled` gives it for frames of any other sampling. When no field
explains the patches better than their noise does (Cp), the field is zero.

Patches without signal (vacuum, thick ice, a grid bar) must not pull the field: each
patch is weighted by the correlation of its two independent half sums (even and odd
frames, after its own alignment) in the alignment pass band, and a patch whose
correlation is not clearly above what noise gives (five standard deviations of the
correlation of two independent noise images with the same pass band) gets weight 0,
as does an outlier (a patch whose residual from the fit is far above the others', e.g.
one locked on a fixed-pattern peak). The spline's stiffness carries the field across the
patches left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft

from dedkit.errors import DedkitError
from dedkit.frames.align.motion import (
    alignment_filter,
    estimate_global_motion,
    fast_shape,
    frequency_grids,
    phase_ramp,
)
from dedkit.threads import thread_count

__all__ = ["DEFAULT_LOCAL_BFACTOR", "LocalMotion", "estimate_local_motion", "spline_basis"]

#: Default B-factor for the patches, square pixels of the alignment copy: a patch has a
#: ninth of the frame's counts (5 x 5 grid), so its correlations need a stronger low pass
#: (measured on the validation movies: 500 halves the per-patch error of 150 at 1 e/pixel).
DEFAULT_LOCAL_BFACTOR = 500.0


def spline_basis(u, n_intervals: int) -> np.ndarray:
    """Uniform cubic B-spline basis on 0..1 with ``n_intervals`` knot intervals, one extra
    function beyond each end: (..., n_intervals + 3) values at ``u``."""
    u = np.asarray(u, np.float64)
    h = 1.0 / n_intervals
    centres = (np.arange(n_intervals + 3) - 1) * h
    z = np.abs((u[..., None] - centres) / h)
    return np.where(z < 1, 2 / 3 - z**2 + 0.5 * z**3, np.where(z < 2, (2 - z) ** 3 / 6, 0.0))


def n_controls(patches: int) -> int:
    """Control points along an axis with ``patches`` patches: one knot interval per
    patch spacing (at least one), one function beyond each end."""
    return max(patches - 1, 1) + 3


def _spatial_design(x, y, shape, grid) -> np.ndarray:
    """(..., mx * my) tensor-product basis at pixel positions (x, y)."""
    bx = spline_basis(np.asarray(x, np.float64) / shape[1], n_controls(grid[0]) - 3)
    by = spline_basis(np.asarray(y, np.float64) / shape[0], n_controls(grid[1]) - 3)
    return (by[..., :, None] * bx[..., None, :]).reshape(*bx.shape[:-1], -1)


@dataclass(frozen=True)
class LocalMotion:
    """A fitted local motion field (see the module).

    Attributes
    ----------
    shape : tuple of float
        ``(ny, nx)`` of the frames the field is expressed in (its pixels).
    n_frames : int
    grid : tuple of int
        ``(n_x, n_y)`` patch grid; the spline has ``n_x + 2`` x ``n_y + 2`` control points
        (``max(n, 2) + 2`` along an axis of ``n`` patches).
    control : ndarray, shape (n_frames, my, mx, 2)
        Control-point values ``(dx, dy)`` of each frame's field, pixels.
    patch_centres : ndarray, shape (P, 2)
        Patch centres ``(x, y)``, pixels.
    patch_shifts : ndarray, shape (n_frames, P, 2)
        Measured residual ``(dx, dy)`` of each patch beyond the global shift.
    patch_weights : ndarray, shape (P,)
        Weight of each patch in the fit; 0 for a patch without usable signal.
    """

    shape: tuple[float, float]
    n_frames: int
    grid: tuple[int, int]
    control: np.ndarray
    patch_centres: np.ndarray
    patch_shifts: np.ndarray
    patch_weights: np.ndarray

    @property
    def n_used(self) -> int:
        """Patches that took part in the fit."""
        return int(np.count_nonzero(self.patch_weights > 0))

    def displacement(self, index: int, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Residual ``(dx, dy)`` of frame ``index`` at positions ``x, y`` (pixels).

        Examples
        --------
        A field that moves everything by (1, -2) pixels in frame 0 (every control point
        the same: a B-spline reproduces constants):

        >>> import numpy as np
        >>> control = np.zeros((2, 4, 4, 2)); control[0] = (1.0, -2.0)
        >>> m = LocalMotion((64.0, 64.0), 2, (2, 2), control, np.zeros((0, 2)),
        ...                 np.zeros((2, 0, 2)), np.zeros(0))
        >>> [round(float(v), 6) for v in m.displacement(0, 10.0, 50.0)]
        [1.0, -2.0]
        >>> [round(float(v), 6) for v in m.scaled(2).displacement(0, 20.0, 100.0)]
        [2.0, -4.0]
        """
        basis = _spatial_design(x, y, self.shape, self.grid)
        c = self.control[index].reshape(-1, 2)
        return basis @ c[:, 0], basis @ c[:, 1]

    def model_shifts(self) -> np.ndarray:
        """The field at the patch centres: (n_frames, P, 2)."""
        basis = _spatial_design(
            self.patch_centres[:, 0], self.patch_centres[:, 1], self.shape, self.grid
        )
        return np.einsum("pc,ick->ipk", basis, self.control.reshape(self.n_frames, -1, 2))

    def field(self, index: int, shape, step: int = 16) -> tuple[np.ndarray, np.ndarray, int]:
        """The residual of frame ``index`` sampled every ``step`` pixels over frames of
        ``shape`` (same sampling as the field): ``(dx grid, dy grid, step)``, for
        interpolation by the warp kernel."""
        ys = np.arange(0, shape[0] + step, step, dtype=np.float64)
        xs = np.arange(0, shape[1] + step, step, dtype=np.float64)
        # the basis is a tensor product: the grid is By @ control @ Bx^T per component
        by = spline_basis(ys / self.shape[0], n_controls(self.grid[1]) - 3)
        bx = spline_basis(xs / self.shape[1], n_controls(self.grid[0]) - 3)
        c = self.control[index]
        return by @ c[:, :, 0] @ bx.T, by @ c[:, :, 1] @ bx.T, step

    def scaled(self, factor: float) -> LocalMotion:
        """The same field for frames ``factor`` times larger (see :meth:`displacement`)."""
        return LocalMotion(
            shape=(self.shape[0] * factor, self.shape[1] * factor),
            n_frames=self.n_frames,
            grid=self.grid,
            control=self.control * factor,
            patch_centres=self.patch_centres * factor,
            patch_shifts=self.patch_shifts * factor,
            patch_weights=self.patch_weights,
        )


#: Patch size in grid spacings: 2 overlaps neighbours by half. Measured on the
#: validation movies (one-cycle deformations, 1 e/pixel/frame): 1.5 and 3 both gave
#: larger field errors (0.47 and 0.57 px against 0.44).
PATCH_SIZE = 2.0


def patch_grid(shape, patches, size=None) -> list[tuple[slice, slice, float, float]]:
    """Overlapping patches: ``(rows, cols, x_centre, y_centre)`` for an n_x x n_y grid."""
    ny, nx = shape
    npx, npy = patches
    out = []
    hy = ny / (npy + 1)
    hx = nx / (npx + 1)
    for j in range(npy):
        for i in range(npx):
            cy, cx = (j + 1) * hy, (i + 1) * hx
            # twice the spacing, rounded to a fast FFT length
            f = PATCH_SIZE if size is None else size
            h = min(ny, scipy.fft.next_fast_len(int(f * hy), real=True))
            w = min(nx, scipy.fft.next_fast_len(int(f * hx), real=True))
            y0 = min(max(0, int(round(cy - h / 2))), ny - h)
            x0 = min(max(0, int(round(cx - w / 2))), nx - w)
            out.append((slice(y0, y0 + h), slice(x0, x0 + w), x0 + w / 2, y0 + h / 2))
    return out


def _check_patches(patches, shape) -> tuple[int, int]:
    try:
        npx, npy = (int(p) for p in patches)
    except (TypeError, ValueError):
        raise DedkitError(f"patches must be two numbers (n_x, n_y), got {patches!r}") from None
    if npx < 1 or npy < 1:
        raise DedkitError(f"patches must be at least 1 x 1, got {npx} x {npy}")
    if npx * npy < 2:
        raise DedkitError("local motion needs at least 2 patches (1 x 1 is the global shift)")
    size = min(2 * shape[0] / (npy + 1), 2 * shape[1] / (npx + 1))
    if size < 32:
        raise DedkitError(
            f"{npx} x {npy} patches on {shape[1]} x {shape[0]} pixels are {size:.0f} pixels "
            "wide: too small to align (use fewer patches or a smaller --align-binning)"
        )
    return npx, npy


def _aligned_frames(frames: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """The frames moved by their global shifts (Fourier shift, exact for the sampled
    image), as float32."""
    n, ny, nx = frames.shape
    shape = fast_shape((ny, nx))
    ky, kx = frequency_grids(shape)
    out = np.empty(frames.shape, np.float32)
    padded = np.empty(shape, np.float32)
    for i in range(n):
        # padded with the frame's mean to a fast FFT length
        padded[...] = np.float32(frames[i].mean())
        padded[:ny, :nx] = frames[i]
        spectrum = scipy.fft.rfft2(padded, workers=thread_count())
        spectrum *= phase_ramp(shape, shifts[i, 0], shifts[i, 1], ky, kx)
        out[i] = scipy.fft.irfft2(spectrum, s=shape, workers=thread_count())[:ny, :nx]
    return out


def half_sum_correlation(stack: np.ndarray, shifts: np.ndarray, bfactor: float) -> tuple:
    """Correlation of the even and odd half sums of a patch stack after moving each frame
    by ``shifts``, in the alignment pass band; and the standard deviation of that
    correlation for two independent noise images."""
    n, h, w = stack.shape
    ky, kx = frequency_grids((h, w))
    filt = alignment_filter((h, w), bfactor).astype(np.float64)
    halves = [np.zeros((h, w // 2 + 1), np.complex128) for _ in range(2)]
    for i in range(n):
        f = stack[i].astype(np.float64)
        spectrum = scipy.fft.rfft2(f - f.mean())
        halves[i % 2] += spectrum * phase_ramp((h, w), shifts[i, 0], shifts[i, 1], ky, kx)
    # rfft layout: columns 1 .. nx/2-1 stand for two coefficients each
    weight = np.full(w // 2 + 1, 2.0)
    weight[0] = 1.0
    if w % 2 == 0:
        weight[-1] = 1.0
    a, b = halves[0] * filt, halves[1] * filt
    num = float(np.sum(weight * (a * np.conj(b)).real))
    den = float(np.sqrt(np.sum(weight * np.abs(a) ** 2) * np.sum(weight * np.abs(b) ** 2)))
    rho = num / den if den > 0 else 0.0
    f4 = np.sum(weight * filt**4)
    noise = float(np.sqrt(f4) / np.sum(weight * filt**2)) if f4 > 0 else 1.0
    return rho, noise


def _penalty(grid) -> np.ndarray:
    """Sum of squared second differences of the control grid along x and y."""
    mx, my = n_controls(grid[0]), n_controls(grid[1])
    dx = np.diff(np.eye(mx), 2, axis=0)
    dy = np.diff(np.eye(my), 2, axis=0)
    px = np.kron(np.eye(my), dx.T @ dx)
    py = np.kron(dy.T @ dy, np.eye(mx))
    # a little plain ridge keeps control points far from every patch near the others
    return px + py + 1e-6 * np.eye(mx * my)


def _second_difference_penalty(n: int) -> np.ndarray:
    d2 = np.diff(np.eye(n), 2, axis=0)
    return d2.T @ d2


#: Temporal modes of the field: the smoothest four of the second-difference penalty
#: (constant, linear and two curved, spanning what MotionCor2's cubic in time spans).
N_TIME_MODES = 4


def temporal_modes(n_frames: int) -> np.ndarray:
    """(n_frames, k) orthonormal temporal basis, smoothest first."""
    _, modes = np.linalg.eigh(_second_difference_penalty(n_frames))
    return modes[:, : min(N_TIME_MODES, n_frames)]


def measurement_noise(patch_shifts: np.ndarray, used: np.ndarray) -> float:
    """Variance of one patch shift measurement, from the trajectories' second differences
    (which a smooth motion barely changes; a robust median estimate, Gaussian noise:
    the second difference of white noise has 6 times its variance)."""
    if len(patch_shifts) < 3 or not used.any():
        return 0.0
    d2 = np.diff(patch_shifts[:, used], 2, axis=0)
    return float(np.median(d2**2) / 0.4549 / 6.0)


def fit_field(patch_shifts, centres, weights, shape, grid) -> tuple[np.ndarray, np.ndarray]:
    """Penalised weighted least-squares fit of the spline field to all patch
    trajectories at once; repeated without outlier patches.

    In time the field spans :func:`temporal_modes` (smooth, like MotionCor2's cubic);
    in space the penalty on the control grid's second differences is chosen by Mallows'
    Cp with the measurement noise estimated from the data (:func:`measurement_noise`).
    (Generalised cross-validation chose fits far too rough on the validation movies: the
    noise of overlapping patches is correlated, which it takes for signal.)
    Returns ``(control (n, my, mx, 2), final weights)``."""
    n, p, _ = patch_shifts.shape
    weights = np.asarray(weights, np.float64).copy()
    basis = _spatial_design(centres[:, 0], centres[:, 1], shape, grid)  # (P, C)
    spatial_penalty = _penalty(grid)
    mx, my = n_controls(grid[0]), n_controls(grid[1])
    modes = temporal_modes(n)  # (n, K)
    data = np.einsum("tpk,tj->pjk", patch_shifts, modes)  # (P, K, 2)
    coef = np.zeros((basis.shape[1], modes.shape[1], 2))
    for _ in range(3):
        used = weights > 0
        if np.count_nonzero(used) < 3:
            # too few patches to say anything about the field: none (global only)
            return np.zeros((n, my, mx, 2)), np.zeros_like(weights)
        noise = measurement_noise(patch_shifts, used)
        bw = basis * weights[:, None]
        gram = basis.T @ bw
        scale = np.trace(gram) / np.trace(spatial_penalty)
        # the zero field is a candidate too: at low dose a patch field can be all noise
        zero = np.zeros_like(coef)
        best = (float(np.sum(used[:, None, None] * data**2)), zero, np.zeros_like(data))
        for lam in 10.0 ** np.arange(-4, 3.1, 0.5):
            inv = np.linalg.solve(gram + lam * scale * spatial_penalty, bw.T)  # (C, P)
            trial = np.einsum("cp,pjk->cjk", inv, data)
            fitted = np.einsum("pc,cjk->pjk", basis, trial)
            rss = float(np.sum(used[:, None, None] * (data - fitted) ** 2))
            dof = float(np.trace((basis @ inv)[np.ix_(used, used)])) * data.shape[1] * 2
            cp = rss + 2.0 * noise * dof
            if best is None or cp < best[0]:
                best = (cp, trial, fitted)
        _, coef, fitted = best
        resid = patch_shifts - np.einsum("pjk,tj->tpk", fitted, modes)
        rms = np.sqrt((resid**2).sum(axis=2).mean(axis=0))
        typical = float(np.median(rms[used]))
        outliers = used & (rms > 3.0 * typical + 0.2)
        if not outliers.any():
            break
        weights[outliers] = 0.0
    control = np.einsum("cjk,tj->tck", coef, modes).reshape(n, my, mx, 2)
    return np.ascontiguousarray(control), weights


def estimate_local_motion(
    frames,
    shifts,
    patches=(5, 5),
    *,
    bfactor: float = DEFAULT_LOCAL_BFACTOR,
    iterations: int = 20,
    tolerance: float = 0.01,
    group: int = 1,
    max_shift: float | None = None,
    progress=None,
) -> LocalMotion:
    """Fit the local motion field of a movie whose global shifts are known.

    Parameters
    ----------
    frames : array, shape (n, ny, nx)
        The same frames the global shifts were measured on.
    shifts : array, shape (n, 2)
        Global ``(dx, dy)`` (:func:`~dedkit.frames.align.estimate_motion`).
    patches : (n_x, n_y)
        Patch grid, e.g. (5, 5) (MotionCor2 ``-Patch 5 5``).
    bfactor, iterations, tolerance, group
        As for the global estimate, per patch.
    max_shift : float, optional
        Largest residual searched per patch (default a sixth of the patch size).
    progress : callable(done, total), optional
        Called after each patch.

    Returns
    -------
    LocalMotion
    """
    frames = np.asarray(frames)
    n, ny, nx = frames.shape
    npx, npy = _check_patches(patches, (ny, nx))
    shifts = np.asarray(shifts, np.float64)
    aligned = _aligned_frames(frames, shifts)
    patches_at = patch_grid((ny, nx), (npx, npy))
    centres = np.array([(cx, cy) for _, _, cx, cy in patches_at])
    patch_shifts = np.zeros((n, len(patches_at), 2))
    weights = np.zeros(len(patches_at))

    def measure(p):
        rows, cols, _, _ = patches_at[p]
        stack = aligned[:, rows, cols]
        size = min(stack.shape[1:])
        limit = max_shift if max_shift is not None else max(4.0, size / 8)
        if stack.std() == 0:
            return None  # an empty patch (a grid bar, outside the beam)
        # unsmoothed: the field fit smooths in time and space together; a patch
        # measurement's noise is tenths of a pixel, so iterating below 0.05 px changes
        # nothing but the time taken
        est = estimate_global_motion(
            stack,
            group=group,
            bfactor=bfactor,
            iterations=min(iterations, 10),
            tolerance=max(tolerance, 0.05),
            max_shift=limit,
            smooth=False,
        )
        rho, noise = half_sum_correlation(stack, est.shifts, bfactor)
        return est.shifts, (rho if rho > 5.0 * noise else 0.0)

    # one patch after another: patches measured in two threads took 25 % longer
    # (their many small array operations contend for the GIL)
    for p in range(len(patches_at)):
        result = measure(p)
        if result is not None:
            patch_shifts[:, p], weights[p] = result
        if progress is not None:
            progress(p + 1, len(patches_at))
    control, weights = fit_field(patch_shifts, centres, weights, (ny, nx), (npx, npy))
    field = LocalMotion((float(ny), float(nx)), n, (npx, npy), control, centres, patch_shifts,
                        weights)  # fmt: skip
    # a field larger than any patch could have measured is noise that the fit
    # extrapolated (a few patches with signal at one side of the frame): no field then
    step = max(8, min(ny, nx) // 16)
    largest = max(np.abs(np.stack(field.field(i, (ny, nx), step)[:2])).max() for i in range(n))
    if largest > max(4.0, min(r.stop - r.start for r, _, _, _ in patches_at) / 8):
        control = np.zeros_like(control)
        weights = np.zeros_like(weights)
    return LocalMotion(
        shape=(float(ny), float(nx)),
        n_frames=n,
        grid=(npx, npy),
        control=control,
        patch_centres=centres,
        patch_shifts=patch_shifts,
        patch_weights=weights,
    )
