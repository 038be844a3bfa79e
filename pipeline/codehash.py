"""Content hashes of the code a run depends on, for the train rule's `params`.

Snakemake cannot see code run by a `shell:` command (it tracks only declared files), so each train job
carries a hash of exactly the source files its method imports (transitively, within
`methods/`), plus its environment's module. Editing methods/gfn/tb.py therefore reruns the
TB runs only; editing methods/gfn/core.py reruns every method built on it. The run contract's
own code (seeding, checkpoints, curve formatting) shapes every run's results, so it is part of
every method's hash.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
from pathlib import Path

import envs
import methods
from pipeline import REPO_ROOT

# `import envs` inside a method is the factory: the env a run uses is hashed separately,
# so one env's edit does not rerun another env's runs.
_FACTORY_PACKAGES = {"envs"}
_PROJECT_PACKAGES = ("methods", "envs")
# the pipeline side of `train(cfg, run)`: what a run's results depend on besides its method
CONTRACT_FILES = ("pipeline/run.py", "methods/common/runapi.py")


def _module_file(module: str, root: Path) -> Path | None:
    base = root.joinpath(*module.split("."))
    if base.with_suffix(".py").exists():
        return base.with_suffix(".py")
    if (base / "__init__.py").exists():
        return base / "__init__.py"
    return None


# Per-file caches, valid while the file's (mtime, size) is unchanged: the Snakefile asks for the
# same closures once per job (~1,000 times at paper scale), and a file edited meanwhile (a test
# does it in-process) must be seen.
_STAT_CACHE: dict[tuple[str, Path], tuple[tuple[int, int], object]] = {}


def _stat_key(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_size


def _cached(kind: str, path: Path, compute):  # noqa: ANN001, ANN202
    key = _stat_key(path)
    hit = _STAT_CACHE.get((kind, path))
    if hit is not None and hit[0] == key:
        return hit[1]
    value = compute()
    _STAT_CACHE[(kind, path)] = (key, value)
    return value


def _imports(path: Path, module: str) -> frozenset[str]:
    return _cached(f"imports:{module}", path, lambda: _parse_imports(path, module))


def _parse_imports(path: Path, module: str) -> frozenset[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            found.add(mod)
            # `from pkg import sub` may name a submodule
            found.update(f"{mod}.{a.name}" for a in node.names)
    return frozenset(found)


def module_closure(module: str, root: Path = REPO_ROOT) -> tuple[Path, ...]:
    """Project source files reached from `module` by imports (factories excluded)."""
    seen: dict[str, Path] = {}
    stack = [module]
    while stack:
        mod = stack.pop()
        if mod in seen or mod.split(".")[0] not in _PROJECT_PACKAGES:
            continue
        if mod in _FACTORY_PACKAGES and mod != module:
            continue
        path = _module_file(mod, root)
        if path is None:
            continue
        seen[mod] = path
        stack.extend(_imports(path, mod))
    return tuple(sorted(set(seen.values())))


def files_hash(files: tuple[Path, ...], root: Path = REPO_ROOT) -> str:
    """Hash of the files' paths and contents (each file read once while it is unchanged)."""
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.relative_to(root)).encode())
        h.update(b"\0")
        h.update(_cached("bytes", f, f.read_bytes))
        h.update(b"\0")
    return h.hexdigest()[:16]


# (method, env, root) -> (the files with their (mtime, size), hash): every job of a method
# asks again; one os.stat per file revalidates the answer (an edited file changes its key).
_METHOD_HASHES: dict[tuple[str, str, str], tuple[tuple[tuple[str, tuple[int, int]], ...], str]] = {}


def _unchanged(stamped: tuple[tuple[str, tuple[int, int]], ...]) -> bool:
    try:
        for path, key in stamped:
            st = os.stat(path)
            if (st.st_mtime_ns, st.st_size) != key:
                return False
    except OSError:
        return False
    return True


def variant_entry(table: str, entry: str, root: Path = REPO_ROOT) -> dict:
    """A thin variant's ``base`` and ``settings`` (methods/common/variants.py), read from the
    table's source under ``root`` without importing it: what its runs' hash covers, so editing
    one entry (or the table's prose) reruns that variant's runs only."""
    path = _module_file(table, root)
    if path is None:
        raise FileNotFoundError(f"variant table {table} not found under {root}")
    for node in ast.parse(path.read_text()).body:
        target = (
            node.target
            if isinstance(node, ast.AnnAssign)
            else (node.targets[0] if isinstance(node, ast.Assign) else None)
        )
        if isinstance(target, ast.Name) and target.id == "VARIANTS" and isinstance(node.value, ast.Dict):
            for key, value in zip(node.value.keys, node.value.values):
                if isinstance(key, ast.Constant) and key.value == entry and isinstance(value, ast.Dict):
                    fields = {k.value: v for k, v in zip(value.keys, value.values) if isinstance(k, ast.Constant)}
                    return {"base": ast.literal_eval(fields["base"]), "settings": ast.literal_eval(fields["settings"])}
    raise KeyError(f"{path}: VARIANTS has no entry {entry!r}")


def method_code_hash(method: str, env: str, root: Path = REPO_ROOT) -> str:
    memo_key = (method, env, str(root))
    hit = _METHOD_HASHES.get(memo_key)
    if hit is not None and _unchanged(hit[0]):
        return hit[1]
    variant = methods.variant_of(method)
    entry = variant_entry(*variant, root) if variant else None
    module = methods.module_name(entry["base"]) if entry else methods.module_name(method)
    files = module_closure(module, root) + module_closure(envs.module_of(env), root)
    if entry:
        files += module_closure("methods.common.variants", root)
    files += tuple(root / f for f in CONTRACT_FILES)
    files = tuple(sorted(set(files)))
    digest = files_hash(files, root)
    if entry:
        digest = hashlib.sha256(f"{digest}\0{json.dumps(entry, sort_keys=True)}".encode()).hexdigest()[:16]
    # a variant's stamp includes its table: an edit there re-reads the entry (the hash moves only if it changed)
    stamped = files + ((_module_file(variant[0], root),) if variant else ())
    _METHOD_HASHES[memo_key] = (tuple((str(f), _stat_key(f)) for f in stamped), digest)
    return digest


def env_code_hash(env: str, root: Path = REPO_ROOT) -> str:
    return files_hash(module_closure(envs.module_of(env), root), root)


def stage_code_hash(module: str, env: str, root: Path = REPO_ROOT) -> str:
    """A stage's code (methods/common/stages.py): its module's closure, its env's, the run contract.
    A run reading the stage hashes its own method's closure, which need not hold the stage's code
    (VPDD's fine-tuning does not import the tokenizer's training): the stage's output, newer after
    a rerun, is what reruns the run."""
    files = module_closure(module, root) + module_closure(envs.module_of(env), root)
    files += tuple(root / f for f in CONTRACT_FILES)
    return files_hash(tuple(sorted(set(files))), root)


def group_code_hash(method: str, env: str, root: Path = REPO_ROOT) -> str:
    """A seed group's code: its method's (method_code_hash) and its group trainer's closure
    (methods.GROUP_TRAINERS). The grouped seeds' own train jobs rerun after it (their input, the
    group's manifest, is newer); the method's lone runs do not hold the group loop."""
    trainer = module_closure(methods.GROUP_TRAINERS[method], root) + (root / "pipeline/groups.py",)
    return hashlib.sha256(f"{method_code_hash(method, env, root)}\0{files_hash(trainer, root)}".encode()).hexdigest()[
        :16
    ]
