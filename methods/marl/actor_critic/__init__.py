"""Multi-agent actor-critic learners (MATD3 and what is built on it: Kaleidoscope-MATD3, the
critic ensemble, the parameter-sharing baselines), one module per method."""
