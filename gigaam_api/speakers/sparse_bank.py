"""A mel filterbank applied as the sparse matrix it is: no BLAS call, no BLAS threads.

Both speaker front ends (Kaldi fbank for the ONNX models, librosa's mel for GE2E) end with
``power @ bank.T``: a few hundred frames of a 257- or 201-bin power spectrum times 80 or 40
triangular filters. As a dense product that is a BLAS ``gemm`` big enough for numpy's OpenBLAS
to split over all its threads; the speaker model runs beside the recogniser on a 2-core machine,
so the second BLAS thread only competes with the recogniser, and OpenBLAS's threads busy-wait
after each call. Measured (``benchmarks/README.md``, "Speaker labelling: cost end to end"):
the GE2E chain over the test conversations took 7.0 CPU-s with OpenBLAS threaded and 3.8 with
one thread, the difference being mostly those threads' spinning, outside the speaker model's
own time.

The filters are triangles: each row has 1–28 non-zero weights and each FFT bin is in at most
two rows (383–477 weights in all, against 8,040 and 20,560 entries in the dense matrices). So
the product is a gather of those bins, a multiply and a segmented sum (``np.add.reduceat``):
plain numpy loops on the calling thread, with the same result up to the order of the additions.
The whole Kaldi fbank of a 1.5 s window took 4.3 ms on its thread plus as much on OpenBLAS's
with the dense product, and takes 2.6 ms in all this way.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["SparseBank"]


class SparseBank:
    """``power @ dense.T`` for a filterbank ``dense`` of shape ``[bands, bins]``."""

    def __init__(self, dense: NDArray[np.floating]) -> None:
        matrix = np.asarray(dense, dtype=np.float64)
        if matrix.ndim != 2:
            raise ValueError(f"a filterbank is [bands, bins], got shape {matrix.shape}")
        self.bands, self.bins = matrix.shape
        rows, columns = np.nonzero(matrix)  # row-major: the weights of each band in a run
        # One weight of 0 appended (on bin 0), so that every band's start, even that of empty
        # bands at the end, lies inside the array reduceat sums.
        self._columns = np.append(columns, 0)
        self._weights = np.append(matrix[rows, columns], 0.0)
        counts = np.bincount(rows, minlength=self.bands)
        self._starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        #: Bands with no weight (none in the banks used here): reduceat gives them the next
        #: band's first term, so they are zeroed after it.
        self._empty = np.flatnonzero(counts == 0)

    def apply(self, power: NDArray[Any]) -> NDArray[np.float64]:
        """``[..., bins]`` power spectra → ``[..., bands]`` filterbank energies (float64)."""
        spectra = np.asarray(power, dtype=np.float64)
        if spectra.shape[-1] != self.bins:
            raise ValueError(f"expected {self.bins} bins, got {spectra.shape[-1]}")
        weighted = spectra[..., self._columns] * self._weights
        energies: NDArray[np.float64] = np.add.reduceat(weighted, self._starts, axis=-1)
        energies[..., self._empty] = 0.0
        return energies
