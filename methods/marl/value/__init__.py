"""Value-decomposition learners (QMIX and what is built on it: VDN, WQMIX, RES, MAST, Kaleidoscope,
the parameter-sharing baselines), one module per method."""
