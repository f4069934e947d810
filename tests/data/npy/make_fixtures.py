"""Writes the .npy/.npz fixtures that tests/nn/test_npy.cpp reads (run once with NumPy 2.2.6;
the outputs are committed, so the tests need no Python)."""
import numpy as np

here = __import__("os").path.dirname(__file__)
vals = np.array([[1.5, np.nan, -2.0], [4.0, 5.25, np.nan], [0.0, -7.5, 8.0], [9.0, 10.0, 11.0]])
mask = ~np.isnan(vals)
np.save(f"{here}/values_nan.npy", vals)
np.save(f"{here}/values_f32_fortran.npy", np.asfortranarray(np.nan_to_num(vals).astype(np.float32)))
np.save(f"{here}/values_big_endian.npy", np.nan_to_num(vals).astype(">f8"))
np.save(f"{here}/mask.npy", mask)
np.save(f"{here}/mask_all.npy", np.ones_like(mask))
np.save(f"{here}/ints.npy", np.array([-3, 0, 7, -(2**40)], dtype=np.int64))
np.save(f"{here}/uint16.npy", np.array([[1, 65535]], dtype=np.uint16))
np.savez(f"{here}/series.npz", values=np.nan_to_num(vals), mask=mask)
np.savez_compressed(f"{here}/series_compressed.npz", values=np.nan_to_num(vals), mask=mask)
