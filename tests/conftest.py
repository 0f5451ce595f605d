import numpy as np
import pytest

DTYPES = [np.float32, np.float64]
# Per-dtype tolerances: FMA and non-FMA paths differ in the last bits.
TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}


@pytest.fixture(params=DTYPES, ids=["f32", "f64"])
def dtype(request):
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
