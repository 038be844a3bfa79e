"""Per-job start-up costs that the smoke DAG pays ~150 times."""
import subprocess
import sys

from pipeline.stats import iqm  # noqa: F401  (import check: stats loads without scipy.stats)

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
