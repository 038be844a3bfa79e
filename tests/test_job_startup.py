"""Per-job start-up costs that the smoke DAG pays ~150 times."""

import subprocess
import sys


def test_stats_module_imports_neither_rliable_nor_scipy_stats():
    """rliable (and through it arch, scipy.stats) costs seconds to import: pipeline.stats loads
    it on first use only, and computes the IQM without scipy."""
    probe = "import sys, pipeline.stats\nprint(*(m in sys.modules for m in ('rliable', 'scipy.stats', 'arch')))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "False"]


PROBE = """
import sys
from pipeline.run import skip_dynamo_import
import torch
skip_dynamo_import()
net = torch.nn.Linear(3, 3)
opt = torch.optim.Adam(net.parameters(), lr=1e-3)
opt.load_state_dict(opt.state_dict())
opt.zero_grad()
torch._C._set_deterministic_algorithms(True)
print('torch._dynamo' in sys.modules, 'torch._inductor' in sys.modules)
"""


def test_evaluation_path_never_imports_dynamo():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
