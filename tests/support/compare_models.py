#!/usr/bin/env python3
"""Compares every float dataset of two HDF5 files (models or checkpoints) for the shell tests.

    compare_models.py A B TOLERANCE   largest absolute difference <= TOLERANCE (0: bitwise equal)

Prints "largest difference D (N float datasets)"; exit code 1 when the files hold different
datasets or differ by more than TOLERANCE.
"""
import sys

import h5py
import numpy as np


def floats(path):
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda k, o: out.__setitem__(k, np.asarray(o[()]))
                     if isinstance(o, h5py.Dataset) and o.dtype.kind == "f" else None)
    return out


def main():
    a, b, tolerance = floats(sys.argv[1]), floats(sys.argv[2]), float(sys.argv[3])
    if a.keys() != b.keys() or not a:
        print(f"different datasets: {sorted(a)} vs {sorted(b)}")
        return 1
    if tolerance == 0:
        same = all(a[k].dtype == b[k].dtype and a[k].tobytes() == b[k].tobytes() for k in a)
        worst = 0.0 if same else max(float(np.max(np.abs(a[k].astype(np.float64) - b[k]))) for k in a)
    else:
        same = None
        worst = max(float(np.max(np.abs(a[k].astype(np.float64) - b[k]))) for k in a)
    print(f"largest difference {worst:.3g} ({len(a)} float datasets)")
    ok = same if tolerance == 0 else worst <= tolerance
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
