"""Goal-conditioned GFlowNets (RBS, He et al., ICLR 2025) and their baselines; shared core in core.py."""
