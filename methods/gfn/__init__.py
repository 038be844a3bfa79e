"""GFlowNet family: core (methods/gfn/core.py), loops (loop.py) and one module per loss or paper method."""
