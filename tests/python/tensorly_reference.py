"""TensorLy reference runs for the CP-ALS / Tucker (HOOI) integration tests.

Usage:
    python tensorly_reference.py cp TENSOR.npy INIT_DIR ITERS [--normalize] [--l2 L]
    python tensorly_reference.py tucker TENSOR.npy INIT_DIR ITERS

INIT_DIR holds factor_0.npy, factor_1.npy, ... (one per mode), plus weights.npy
(cp, optional, default ones) or core.npy (tucker). Prints one JSON object on stdout.

"fits" is 1 - rec_error for each iteration exactly as TensorLy records it.
With return_errors=True TensorLy records an error every iteration even when
tol=0 (parafac: `if (tol or return_errors)`; partial_tucker: always), so the
values are TensorLy's own:
  cp:     sqrt(|‖X‖² + cp_norm(model)² - 2<X, model>|) / ‖X‖, with <X, model> taken
          from the last mode's MTTKRP (weights included) and the new last factor;
  tucker: sqrt(|‖X‖² - ‖core‖²|) / ‖X‖ (orthonormal factors).
As an independent check, "final_fit_direct" is 1 - ‖X - full(model)‖/‖X‖ for the
returned model, computed by explicit reconstruction; it should equal fits[-1].
Inputs are cast to float64. Note: TensorLy's Tucker ignores the initial core
(only the factors seed HOOI); core.npy just fixes the ranks.
"""
import argparse
import json
import os

import numpy as np
import tensorly as tl
from tensorly.cp_tensor import CPTensor, cp_to_tensor
from tensorly.decomposition import parafac, tucker
from tensorly.tucker_tensor import TuckerTensor, tucker_to_tensor


def load(path):
    return np.asarray(np.load(path), dtype=np.float64)


def load_factors(init_dir, ndim):
    return [load(os.path.join(init_dir, f"factor_{n}.npy")) for n in range(ndim)]


def direct_fit(X, full):
    return float(1.0 - np.linalg.norm(X - full) / np.linalg.norm(X))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("method", choices=["cp", "tucker"])
    p.add_argument("tensor")
    p.add_argument("init_dir")
    p.add_argument("iters", type=int)
    p.add_argument("--normalize", action="store_true", help="cp: normalize_factors=True")
    p.add_argument("--l2", type=float, default=0.0, help="cp: l2_reg")
    a = p.parse_args()

    tl.set_backend("numpy")
    X = load(a.tensor)
    factors = load_factors(a.init_dir, X.ndim)
    out = {}
    if a.method == "cp":
        rank = factors[0].shape[1]
        wpath = os.path.join(a.init_dir, "weights.npy")
        weights = load(wpath) if os.path.exists(wpath) else np.ones(rank)
        (w, fs), errors = parafac(
            X, rank=rank, init=CPTensor((weights, factors)), n_iter_max=a.iters,
            tol=0, normalize_factors=a.normalize, l2_reg=a.l2, return_errors=True,
        )
        out["weights"] = np.asarray(w).tolist()
        out["factors"] = [np.asarray(f).ravel(order="C").tolist() for f in fs]
        out["final_fit_direct"] = direct_fit(X, cp_to_tensor((w, fs)))
    else:
        core = load(os.path.join(a.init_dir, "core.npy"))
        (g, fs), errors = tucker(
            X, rank=list(core.shape), init=TuckerTensor((core, list(factors))),
            n_iter_max=a.iters, tol=0, return_errors=True,
        )
        out["core_norm"] = float(np.linalg.norm(g))
        out["final_fit_direct"] = direct_fit(X, tucker_to_tensor((g, fs)))
    out["fits"] = [float(1.0 - e) for e in errors]
    out["tensorly_version"] = tl.__version__
    print(json.dumps(out))


if __name__ == "__main__":
    main()
