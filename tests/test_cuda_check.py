"""bench/cuda_check.py, the check run on a lent GPU, run here on the CPU at a tiny size: every
registered method goes through it (so a GPU session only has to change the device)."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "cuda_check.py"


def _load():  # noqa: ANN202
    spec = importlib.util.spec_from_file_location("cuda_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_cuda_check_runs_every_method_on_cpu(capsys) -> None:  # noqa: ANN001
    check = _load()
    check.gfn(torch.device("cpu"), iterations=4)
    check.control(torch.device("cpu"), updates=3)
    out = capsys.readouterr().out
    import methods

    for name, module in methods.METHODS.items():
        if module.startswith(("methods.gfn.", "methods.control.")):
            assert f"{name}:" in out, name


def _random_calls_without_device(path: Path) -> list[str]:
    """torch.rand/randn/randint/randperm/multinomial-style calls given a ``generator=`` but no
    ``device=``: on a GPU, a CUDA generator with a CPU default device raises."""
    found = []
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name not in {"rand", "randn", "randint", "randperm", "rand_like", "normal"}:
            continue
        kws = {k.arg for k in node.keywords}
        if "generator" in kws and "device" not in kws:
            found.append(f"{path}:{node.lineno}")
    return found


def test_seeded_random_draws_name_the_generators_device() -> None:
    root = SCRIPT.parent.parent / "methods"
    offenders = [hit for f in sorted(root.rglob("*.py")) for hit in _random_calls_without_device(f)]
    assert not offenders, "random draws with generator= but no device=: " + ", ".join(offenders)
