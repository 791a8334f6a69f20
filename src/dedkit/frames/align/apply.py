"""Applying estimated motion to full-resolution frames, and the aligned sums.

A frame's displacement is its global shift ``s`` plus the local field ``r(x, y)``
(:mod:`~dedkit.frames.align.local`). The local part is applied in real space by
interpolation with Keys' cubic convolution kernel (a = -0.5, the kernel of bicubic
resampling: exact for quadratics, no prefilter); the global part as a phase ramp on the
frame's spectrum, which the dose-weighted sum needs anyway and which is exact for the
sampled image (no interpolation blur). ``interpolation="cubic"`` applies the global
shift by the same cubic interpolation instead; the validation measures what each costs in
FRC (``docs/validation.md``). A Fourier shift wraps a strip of ``|s|`` pixels around the
edges of the frame, as MotionCor2's does; interpolation repeats the edge pixels there.

:class:`AlignedSums` streams the frames: each is warped (if there is a local field),
Fourier transformed once, moved by its phase ramp and added to the plain sum, the
dose-weighted sum and the even or odd half sum, in one fused pass (a numba kernel beside
its numpy reference, :func:`accumulate_reference`); the sums are transformed back at the
end. Memory: one complex accumulator per sum, whatever the number of frames.
"""

from __future__ import annotations

import numba
import numpy as np
import scipy.fft

from dedkit.errors import DedkitError
from dedkit.frames.align.motion import MotionEstimate, frequency_grids
from dedkit.threads import thread_count

__all__ = [
    "AlignedSums",
    "apply_motion",
    "warp_frame",
    "warp_reference",
    "accumulate",
    "accumulate_reference",
]


def _keys(t):
    """Keys' cubic convolution weights (a = -0.5) for the four neighbours of a sample at
    fractional offset ``t`` (0 <= t < 1) past the second one."""
    t2 = t * t
    t3 = t2 * t
    w0 = -0.5 * t3 + t2 - 0.5 * t
    w1 = 1.5 * t3 - 2.5 * t2 + 1.0
    w2 = -1.5 * t3 + 2.0 * t2 + 0.5 * t
    w3 = 0.5 * t3 - 0.5 * t2
    return w0, w1, w2, w3


def _bilinear(grid, gx, gy):
    """Bilinear interpolation of ``grid`` at fractional grid positions, clamped."""
    ny, nx = grid.shape
    gx = np.clip(gx, 0, nx - 1)
    gy = np.clip(gy, 0, ny - 1)
    x0 = np.minimum(np.floor(gx).astype(np.int64), nx - 2) if nx > 1 else np.zeros_like(gx, int)
    y0 = np.minimum(np.floor(gy).astype(np.int64), ny - 2) if ny > 1 else np.zeros_like(gy, int)
    tx, ty = gx - x0, gy - y0
    x1, y1 = np.minimum(x0 + 1, nx - 1), np.minimum(y0 + 1, ny - 1)
    return (
        grid[y0, x0] * (1 - tx) * (1 - ty)
        + grid[y0, x1] * tx * (1 - ty)
        + grid[y1, x0] * (1 - tx) * ty
        + grid[y1, x1] * tx * ty
    )


def warp_reference(frame, field_x, field_y, step, offset=(0.0, 0.0), move=True) -> np.ndarray:
    """Plain numpy version of :func:`warp_frame` (the kernel is tested against it)."""
    frame = np.asarray(frame, np.float64)
    ny, nx = frame.shape
    y, x = np.mgrid[0:ny, 0:nx].astype(np.float64)
    ax, ay = offset if move else (0.0, 0.0)
    # the field is a function of the position in the aligned sum
    gx = (x - (0.0 if move else offset[0])) / step
    gy = (y - (0.0 if move else offset[1])) / step
    sx = x + ax + _bilinear(np.asarray(field_x, np.float64), gx, gy)
    sy = y + ay + _bilinear(np.asarray(field_y, np.float64), gx, gy)
    x0 = np.floor(sx).astype(np.int64)
    y0 = np.floor(sy).astype(np.int64)
    wx = _keys(sx - x0)
    wy = _keys(sy - y0)
    out = np.zeros_like(frame)
    for j in range(4):
        yy = np.clip(y0 - 1 + j, 0, ny - 1)
        for i in range(4):
            xx = np.clip(x0 - 1 + i, 0, nx - 1)
            out += wy[j] * wx[i] * frame[yy, xx]
    return out.astype(np.float32)


@numba.njit(cache=True, nogil=True, parallel=True)
def _warp_kernel(frame, fx, fy, step, ox, oy, ax, ay, out):  # pragma: no cover - jit
    ny, nx = frame.shape
    gny, gnx = fx.shape
    for r in numba.prange(ny):
        gy = min(max((r - oy) / step, 0.0), gny - 1.0)
        y0g = min(int(gy), max(gny - 2, 0))
        y1g = min(y0g + 1, gny - 1)
        tyg = gy - y0g
        for c in range(nx):
            gx = min(max((c - ox) / step, 0.0), gnx - 1.0)
            x0g = min(int(gx), max(gnx - 2, 0))
            x1g = min(x0g + 1, gnx - 1)
            txg = gx - x0g
            w00 = (1 - txg) * (1 - tyg)
            w01 = txg * (1 - tyg)
            w10 = (1 - txg) * tyg
            w11 = txg * tyg
            dx = ax + (w00 * fx[y0g, x0g] + w01 * fx[y0g, x1g])
            dx += w10 * fx[y1g, x0g] + w11 * fx[y1g, x1g]
            dy = ay + (w00 * fy[y0g, x0g] + w01 * fy[y0g, x1g])
            dy += w10 * fy[y1g, x0g] + w11 * fy[y1g, x1g]
            sx = c + dx
            sy = r + dy
            x0 = int(np.floor(sx))
            y0 = int(np.floor(sy))
            tx = sx - x0
            ty = sy - y0
            tx2 = tx * tx
            tx3 = tx2 * tx
            ty2 = ty * ty
            ty3 = ty2 * ty
            wx0 = -0.5 * tx3 + tx2 - 0.5 * tx
            wx1 = 1.5 * tx3 - 2.5 * tx2 + 1.0
            wx2 = -1.5 * tx3 + 2.0 * tx2 + 0.5 * tx
            wx3 = 0.5 * tx3 - 0.5 * tx2
            wy0 = -0.5 * ty3 + ty2 - 0.5 * ty
            wy1 = 1.5 * ty3 - 2.5 * ty2 + 1.0
            wy2 = -1.5 * ty3 + 2.0 * ty2 + 0.5 * ty
            wy3 = 0.5 * ty3 - 0.5 * ty2
            xa = min(max(x0 - 1, 0), nx - 1)
            xb = min(max(x0, 0), nx - 1)
            xc = min(max(x0 + 1, 0), nx - 1)
            xd = min(max(x0 + 2, 0), nx - 1)
            # the four rows unrolled: a loop choosing each row's weight by branches took
            # 1.2 times as long (K3 counting frames, 2 threads)
            ya = min(max(y0 - 1, 0), ny - 1)
            yb = min(max(y0, 0), ny - 1)
            yc = min(max(y0 + 1, 0), ny - 1)
            yd = min(max(y0 + 2, 0), ny - 1)
            acc = wy0 * (
                wx0 * frame[ya, xa]
                + wx1 * frame[ya, xb]
                + wx2 * frame[ya, xc]
                + wx3 * frame[ya, xd]
            )
            acc += wy1 * (
                wx0 * frame[yb, xa]
                + wx1 * frame[yb, xb]
                + wx2 * frame[yb, xc]
                + wx3 * frame[yb, xd]
            )
            acc += wy2 * (
                wx0 * frame[yc, xa]
                + wx1 * frame[yc, xb]
                + wx2 * frame[yc, xc]
                + wx3 * frame[yc, xd]
            )
            acc += wy3 * (
                wx0 * frame[yd, xa]
                + wx1 * frame[yd, xb]
                + wx2 * frame[yd, xc]
                + wx3 * frame[yd, xd]
            )
            out[r, c] = acc


def warp_frame(frame, field_x, field_y, step, offset=(0.0, 0.0), move=True, out=None):
    """Resample ``frame`` at ``p + offset + r(p)`` (``p + r(p - offset)`` when ``move``
    is False), with r a smooth field over the aligned sum's positions, sampled every
    ``step`` pixels (``field_x``, ``field_y``: :meth:`LocalMotion.field`) and interpolated
    bilinearly; Keys cubic interpolation of the frame, edges repeated.

    ``offset`` is the frame's global shift: with ``move`` the warp applies it too;
    without, a later Fourier shift by ``offset`` does, and the field is evaluated where
    that shift will take each pixel, so that the two compose exactly.

    Examples
    --------
    >>> import numpy as np
    >>> frame = np.arange(64, dtype=np.float32).reshape(8, 8)
    >>> field = np.ones((2, 2))            # dx = 1 everywhere, dy = 0
    >>> warp_frame(frame, field, 0 * field, 8)[3, :4]
    array([25., 26., 27., 28.], dtype=float32)
    """
    frame = np.ascontiguousarray(frame, np.float32)
    if out is None:
        out = np.empty(frame.shape, np.float32)
    _warp_kernel(
        frame,
        np.ascontiguousarray(field_x, np.float64),
        np.ascontiguousarray(field_y, np.float64),
        float(step),
        0.0 if move else float(offset[0]),
        0.0 if move else float(offset[1]),
        float(offset[0]) if move else 0.0,
        float(offset[1]) if move else 0.0,
        out,
    )
    return out


def accumulate_reference(spectrum, ey, ex, sums, weights=None, weighted=None, half=None):
    """Plain numpy version of :func:`accumulate`."""
    moved = spectrum * ey[:, None] * ex[None, :]
    sums += moved
    if weighted is not None:
        weighted += moved * weights
    if half is not None:
        half += moved


@numba.njit(cache=True, nogil=True, parallel=True)
def _accumulate_kernel(
    spectrum, ey, ex, sums, weights, weighted, half, do_w, do_h
):  # pragma: no cover - jit
    ny, nx = spectrum.shape
    for r in numba.prange(ny):
        a = ey[r]
        for c in range(nx):
            g = spectrum[r, c] * (a * ex[c])
            sums[r, c] += g
            if do_w:
                weighted[r, c] += g * weights[r, c]
            if do_h:
                half[r, c] += g


def accumulate(spectrum, ey, ex, sums, weights=None, weighted=None, half=None) -> None:
    """Add ``spectrum * ey[:, None] * ex[None, :]`` (a separable phase ramp) to ``sums``,
    times ``weights`` to ``weighted``, and to ``half``, in one pass (in place)."""
    dummy_c = sums[:1, :1]
    dummy_w = np.zeros((1, 1), np.float32)
    _accumulate_kernel(
        spectrum,
        ey,
        ex,
        sums,
        dummy_w if weights is None else weights,
        dummy_c if weighted is None else weighted,
        dummy_c if half is None else half,
        weighted is not None,
        half is not None,
    )


def _check_motion(motion: MotionEstimate, n_frames: int | None = None) -> None:
    if not isinstance(motion, MotionEstimate):
        raise DedkitError("motion must be a MotionEstimate (from estimate_motion)")
    if n_frames is not None and motion.n_frames != n_frames:
        raise DedkitError(f"the motion has {motion.n_frames} frames, the movie {n_frames}")


class AlignedSums:
    """Streaming aligned sums of a movie's frames (see the module).

    Parameters
    ----------
    shape : (ny, nx)
        Size of the frames that will be added.
    motion : MotionEstimate
        In the pixels of these frames (``estimate.scaled(f)`` for frames f times larger
        than the alignment copy).
    dose_weights : DoseWeights, optional
        Per-frame filters (:class:`dedkit.frames.DoseWeights`) for the dose-weighted sum.
    even_odd : bool
        Also keep half sums of the even and odd frames (0-based frame numbers).
    interpolation : {'fourier', 'cubic'}
        How the global shift is applied (the local field always by cubic interpolation).
    workers : int
        Threads for the FFTs (scipy.fft ``workers``; None: :func:`dedkit.threads.thread_count`).
    pad : bool
        Transform frames padded with their mean to lengths the FFT handles fast (the sums
        are cropped back). False keeps a periodic image exactly periodic (a Fourier
        shift then wraps around the edges, as MotionCor2's does).

    Examples
    --------
    >>> import numpy as np
    >>> from dedkit.frames.align import MotionEstimate
    >>> frames = np.zeros((2, 16, 16), np.float32)
    >>> frames[0, 8, 8] = 1.0; frames[1, 8, 10] = 1.0   # moved 2 pixels in x
    >>> sums = AlignedSums((16, 16), MotionEstimate(np.array([[-1.0, 0], [1.0, 0]])))
    >>> for i, f in enumerate(frames):
    ...     sums.add(i, f)
    >>> np.round(sums.result()["sum"][8, 8:11], 3) + 0.0
    array([0., 2., 0.], dtype=float32)
    """

    def __init__(
        self,
        shape,
        motion: MotionEstimate,
        *,
        dose_weights=None,
        even_odd: bool = False,
        interpolation: str = "fourier",
        workers: int | None = None,
        pad: bool = True,
    ):
        _check_motion(motion)
        if interpolation not in ("fourier", "cubic"):
            raise DedkitError(f"unknown interpolation {interpolation!r} (fourier or cubic)")
        self.shape = (int(shape[0]), int(shape[1]))
        self.motion = motion
        self.dose_weights = dose_weights
        if dose_weights is not None:
            if getattr(dose_weights, "n_frames", motion.n_frames) != motion.n_frames:
                raise DedkitError(
                    f"dose weights for {dose_weights.n_frames} frames, motion for {motion.n_frames}"
                )
        if dose_weights is not None and tuple(dose_weights.shape) != (int(shape[0]), int(shape[1])):
            raise DedkitError(
                f"dose weights for {dose_weights.shape} frames, the sums {tuple(shape)}"
            )
        self.interpolation = interpolation
        self.workers = thread_count() if workers is None else workers
        # transforms run on a frame padded to lengths the FFT handles fast (K3's 4092
        # rows take 2.5 times as long as 4096); the pad holds the frame's mean, and the
        # sums are cropped back at the end
        self._fshape = self.shape
        if pad:
            self._fshape = tuple(scipy.fft.next_fast_len(n, real=True) for n in self.shape)
        self._padded = None
        if self._fshape != self.shape:
            self._padded = np.empty(self._fshape, np.float32)
            if dose_weights is not None:
                dose_weights = dose_weights.resized(self._fshape)
        self._frame_weights = dose_weights
        spectrum_shape = (self._fshape[0], self._fshape[1] // 2 + 1)
        self._sum = np.zeros(spectrum_shape, np.complex64)
        self._weighted = np.zeros(spectrum_shape, np.complex64) if dose_weights else None
        self._halves = (
            [np.zeros(spectrum_shape, np.complex64) for _ in range(2)] if even_odd else None
        )
        self._ky, self._kx = frequency_grids(self._fshape)
        self._warped = np.empty(self.shape, np.float32) if self._padded is None else None
        self._weights = np.empty(spectrum_shape, np.float32) if dose_weights else None
        self.added = np.zeros(motion.n_frames, bool)

    def add(self, index: int, frame) -> None:
        """Add frame ``index`` (float, the size given), aligned."""
        frame = np.asarray(frame)
        if frame.shape != self.shape:
            raise DedkitError(f"frame {index} is {frame.shape}, the sums {self.shape}")
        if not 0 <= index < self.motion.n_frames:
            raise DedkitError(f"frame index {index} outside 0..{self.motion.n_frames - 1}")
        sx, sy = (float(v) for v in self.motion.shifts[index])
        local = self.motion.local
        if local is not None:
            fx, fy, step = local.field(index, self.shape)
        else:
            fx = fy = np.zeros((2, 2))
            step = max(self.shape)
        ny, nx = self.shape
        # warped frames go straight into the padded buffer when there is one
        target = self._warped if self._padded is None else self._padded[:ny, :nx]
        if self.interpolation == "cubic":
            data = warp_frame(frame, fx, fy, step, (sx, sy), out=target)
            sx = sy = 0.0
        elif local is not None:
            # the field is evaluated where the Fourier shift takes each pixel from
            data = warp_frame(frame, fx, fy, step, (sx, sy), move=False, out=target)
        else:
            data = frame
        if self._padded is not None:
            if data is not target:
                target[...] = data
            mean = np.float32(target.mean())
            self._padded[ny:, :] = mean
            self._padded[:ny, nx:] = mean
            data = self._padded
        spectrum = scipy.fft.rfft2(np.asarray(data, np.float32), workers=self.workers)
        ey = np.exp(2j * np.pi * self._ky[:, 0] * sy).astype(np.complex64)
        ex = np.exp(2j * np.pi * self._kx[0] * sx).astype(np.complex64)
        weights = None
        if self._weighted is not None:
            weights = self._frame_weights.frame(index, out=self._weights)
        half = self._halves[index % 2] if self._halves is not None else None
        accumulate(spectrum, ey, ex, self._sum, weights, self._weighted, half)
        self.added[index] = True

    def result(self) -> dict[str, np.ndarray]:
        """The sums, float32: ``sum``, and ``dose_weighted``, ``even``, ``odd`` if kept."""
        out = {"sum": self._inverse(self._sum)}
        if self._weighted is not None:
            out["dose_weighted"] = self._inverse(self._weighted)
        if self._halves is not None:
            out["even"] = self._inverse(self._halves[0])
            out["odd"] = self._inverse(self._halves[1])
        return out

    def _inverse(self, spectrum) -> np.ndarray:
        image = scipy.fft.irfft2(spectrum, s=self._fshape, workers=self.workers)
        return np.ascontiguousarray(image[: self.shape[0], : self.shape[1]], np.float32)


def apply_motion(frame, motion: MotionEstimate, index: int, *, interpolation="fourier"):
    """One frame moved onto the aligned sum's grid (float32).

    Examples
    --------
    >>> import numpy as np
    >>> frame = np.zeros((16, 16), np.float32); frame[8, 10] = 1.0
    >>> m = MotionEstimate(np.array([[2.0, 0.0], [-2.0, 0.0]]))
    >>> int(np.argmax(apply_motion(frame, m, 0)[8]))
    8
    """
    _check_motion(motion)
    frame = np.asarray(frame, np.float32)
    sums = AlignedSums(frame.shape, motion, interpolation=interpolation, workers=1)
    sums.add(index, frame)
    return sums.result()["sum"]
