"""Load and validate the configuration, and expand the experiment matrix into run jobs (the
checks of a paper config that go beyond its schema: pipeline/paper_checks.py).

Everything here runs when the Snakefile is parsed, before any job is created: a bad config
stops with a :class:`ConfigError` naming the file and the field.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import methods
from pipeline import REPO_ROOT, layout, yamlio
from pipeline.config_base import (
    SCALES,  # noqa: F401 (re-exported)
    SEED_GROUPS,
    STAGE_PLAN,
    ConfigError,  # noqa: F401 (re-exported)
    fail,
    fill_defaults,
    load_yaml,
    merged_overrides,
    require_unique,
    schema,
    validate_schema,
)


def load_main(config: dict, source: str = "config/config.yaml") -> dict:
    """Validate the (Snakemake-merged) top-level config and fill its defaults."""
    # Snakemake parses --config values as YAML 1.1, where 1e-3 is a string
    cfg = yamlio.coerce_floats(copy.deepcopy(dict(config)))
    validate_schema(cfg, "config", source)
    require_unique(source, "papers", cfg["papers"], "paper")
    return fill_defaults(cfg, schema("config"))


def paper_path(cfg: dict, paper: str, root: Path = REPO_ROOT) -> Path:
    return root / cfg["paper_dir"] / f"{paper}.yaml"


# A paper config that passed validation with this exact code is remembered (by the hash of the
# file and of the code that validates it), so later invocations skip the checks that import
# every method module (torch, gymnasium, ...): `snakemake -n` then never imports torch.
VALIDATED_DIR = REPO_ROOT / ".snakemake" / "rlrepro" / "validated"
_CODE_DIGEST: list[str] = []


def code_digest(root: Path = REPO_ROOT) -> str:
    """sha256 of every file the validation depends on (pipeline, schemas, methods, envs)."""
    if not _CODE_DIGEST:
        h = hashlib.sha256()
        for d in ("pipeline", "methods", "envs"):
            for f in sorted((root / d).rglob("*")):
                if f.suffix in (".py", ".yaml") and "__pycache__" not in f.parts:
                    h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
        _CODE_DIGEST.append(h.hexdigest())
    return _CODE_DIGEST[0]


def _validated_path(path: Path, raw: bytes) -> Path:
    key = hashlib.sha256(str(path.resolve()).encode() + b"\0" + raw + b"\0" + code_digest().encode())
    return VALIDATED_DIR / f"{key.hexdigest()[:32]}.json"


def load_paper(path: Path) -> dict:
    """Load and validate one paper config, including its references to methods and envs."""
    if not path.exists():
        raise ConfigError(f"{path}: (file): not found")
    raw = path.read_bytes()
    memo = _validated_path(path, raw)
    if memo.is_file():
        try:
            return json.loads(memo.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass
    from pipeline.paper_checks import check_paper  # noqa: PLC0415 (only on a cache miss)

    doc = check_paper(path)
    try:
        from pipeline.atomic import atomic_write_json  # noqa: PLC0415

        atomic_write_json(memo, doc)
    except (OSError, TypeError, ValueError):
        pass  # a read-only checkout (or an exotic YAML value) validates every time
    return doc


# ------------------------------------------------------------------------------ jobs
@dataclass(frozen=True)
class RunJob:
    scale: str
    paper: str
    experiment: str
    method: str
    seed: int
    env: str
    env_kwargs: dict
    iterations: int
    eval_every: int
    checkpoint_every: int
    runtime_min: int
    hparams: dict
    # the stages this run reads (methods/common/stages.py): name -> stage id, in order
    stages: dict = dataclasses.field(default_factory=dict)
    # the seeds trained together with this one in one job (GroupJob), itself included; () alone
    seed_group: tuple = ()

    @property
    def key(self) -> str:
        return layout.run_key(self.scale, self.paper, self.experiment, self.method, self.seed)

    @property
    def group_key(self) -> str:
        """The directory key of the group job that trains this run (``seed_group`` not empty)."""
        return layout.group_key(
            self.scale, self.paper, self.experiment, self.method, self.seed_group[0], self.seed_group[-1]
        )

    # computed once per job: the Snakefile asks for them several times a job (a job is never changed
    # after expansion)
    @functools.cached_property
    def env_key(self) -> str:
        return env_key(self.env, self.env_kwargs)

    def resolved(self) -> dict[str, Any]:
        """The run's resolved config: written as config.yaml and hashed into `params`."""
        doc = {
            "scale": self.scale,
            "paper": self.paper,
            "experiment": self.experiment,
            "method": self.method,
            "seed": self.seed,
            "env": self.env,
            "env_kwargs": dict(self.env_kwargs),
            "iterations": self.iterations,
            "eval_every": self.eval_every,
            "checkpoint_every": self.checkpoint_every,
            "hparams": dict(self.hparams),
        }
        if self.stages:  # only where there are any: the other runs' config hashes stay as they were
            doc["stages"] = dict(self.stages)
        if self.seed_group:  # trained beside these seeds: equal to its lone run up to float rounding
            doc["seed_group"] = list(self.seed_group)
        return doc

    @classmethod
    def from_resolved(cls, doc: dict[str, Any], runtime_min: int = 0) -> RunJob:
        """The job a run's config.yaml (``resolved()``, written by train) describes."""
        return cls(
            runtime_min=runtime_min,
            stages=dict(doc.get("stages") or {}),
            seed_group=tuple(doc.get("seed_group") or ()),
            **{
                k: doc[k]
                for k in (
                    "scale",
                    "paper",
                    "experiment",
                    "method",
                    "seed",
                    "env",
                    "env_kwargs",
                    "iterations",
                    "eval_every",
                    "checkpoint_every",
                    "hparams",
                )
            },
        )

    def config_hash(self) -> str:
        return self._config_hash

    @functools.cached_property
    def _config_hash(self) -> str:
        return stable_hash(self.resolved())

    def method_config(self) -> Any:
        """The method's typed Config dataclass for this run."""
        cls = methods.load(self.method).Config
        return cls(
            env=self.env,
            env_kwargs=dict(self.env_kwargs),
            iterations=self.iterations,
            eval_every=self.eval_every,
            checkpoint_every=self.checkpoint_every,
            **self.hparams,
        )


@dataclass(frozen=True)
class StageJob:
    """One stage job (methods/common/stages.py): an artifact several runs of a paper read,
    identified by what it reads, so that runs agreeing on it share one job."""

    scale: str
    paper: str
    name: str
    module: str
    settings: dict
    seed: int
    env: str
    env_kwargs: dict
    needs: dict  # upstream stage name -> stage id
    runtime_min: int

    def identity(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "module": self.module,
            "settings": dict(self.settings),
            "seed": self.seed,
            "env": self.env,
            "env_kwargs": dict(self.env_kwargs),
            "needs": dict(self.needs),
        }

    @functools.cached_property
    def stage_id(self) -> str:
        return f"{self.name}-{stable_hash(self.identity())[:10]}"

    @property
    def key(self) -> str:
        return layout.stage_key(self.scale, self.paper, self.stage_id)

    @functools.cached_property
    def env_key(self) -> str:
        return env_key(self.env, self.env_kwargs)

    def resolved(self) -> dict[str, Any]:
        """Written as the stage's config.yaml (its identity, and where it lives)."""
        return {"scale": self.scale, "paper": self.paper, "stage_id": self.stage_id, **self.identity()}

    def config_hash(self) -> str:
        return stable_hash(self.resolved())


@dataclass(frozen=True)
class GroupJob:
    """k seeds of one (experiment, method) trained in one process (methods/control/group_loop.py).
    It writes each seed's run files into ``<group dir>/seed<N>/``; each seed's own train job then
    takes them into its ordinary run directory, so everything downstream sees ordinary runs."""

    members: tuple  # the RunJobs, in seed order

    # what the members share, read off the first
    scale = property(lambda self: self.members[0].scale)
    paper = property(lambda self: self.members[0].paper)
    experiment = property(lambda self: self.members[0].experiment)
    method = property(lambda self: self.members[0].method)
    env = property(lambda self: self.members[0].env)
    env_key = property(lambda self: self.members[0].env_key)
    stages = property(lambda self: self.members[0].stages)

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(m.seed for m in self.members)

    @property
    def seed(self) -> int:
        return self.members[0].seed

    @property
    def key(self) -> str:
        return self.members[0].group_key

    @property
    def runtime_min(self) -> int:
        # an upper bound: k seeds together never take longer than k runs one after another
        return self.members[0].runtime_min * len(self.members)

    def resolved(self) -> dict[str, Any]:
        return {"members": [m.resolved() for m in self.members]}

    def config_hash(self) -> str:
        return stable_hash(self.resolved())

    def method_config(self) -> Any:
        """The members' Config (equal but for the seed, which a Config does not hold)."""
        return self.members[0].method_config()


def seed_chunks(n_seeds: int, k: int) -> list[tuple[int, ...]]:
    """Seeds 0..n-1 in groups of k: 0..k-1, k..2k-1, ... (the last may be smaller). A seed's group
    depends on its index only, so adding a seed touches the last group alone."""
    return [tuple(range(i, min(i + k, n_seeds))) for i in range(0, n_seeds, k)]


def stage_jobs_of(
    specs: list[dict], *, scale: str, paper: str, seed: int, env: str, env_kwargs: dict, runtime_min: int
) -> list[StageJob]:
    """The stage jobs one run reads, from its Config's stage specs (``StageSpec.to_dict``), in order."""
    ids: dict[str, str] = {}
    out = []
    for spec in specs:
        job = StageJob(
            scale=scale,
            paper=paper,
            name=spec["name"],
            module=spec["module"],
            settings=dict(spec["settings"]),
            seed=seed if spec["per_seed"] else int(spec["settings"].get("seed", 0)),
            env=env,
            env_kwargs=dict(env_kwargs),
            needs={n: ids[n] for n in spec["needs"]},
            runtime_min=runtime_min,
        )
        ids[job.name] = job.stage_id
        out.append(job)
    return out


def stable_hash(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def env_key(env: str, kwargs: dict) -> str:
    return f"{env}-{stable_hash(kwargs)[:10]}"


def expand_jobs(paper_cfg: dict, scale: str, stage_table: dict[str, StageJob] | None = None) -> list[RunJob]:
    """The paper's runs at ``scale``; the stage jobs they read go into ``stage_table`` (id -> job)."""
    stage_table = {} if stage_table is None else stage_table
    jobs = []
    for exp_id, exp in paper_cfg["experiments"].items():
        sc = exp["scales"][scale]
        for method in sc.get("methods") or exp["methods"]:
            hp = merged_overrides(exp, scale, method)
            specs = (((paper_cfg.get(STAGE_PLAN) or {}).get(exp_id) or {}).get(scale) or {}).get(method) or []
            together = method in ((paper_cfg.get(SEED_GROUPS) or {}).get(exp_id) or {}).get(scale, [])
            group_of = {}
            for chunk in seed_chunks(sc["seeds"], sc.get("seed_batch", 1) if together else 1):
                group_of.update({s: chunk if len(chunk) > 1 else () for s in chunk})
            for seed in range(sc["seeds"]):
                stages = stage_jobs_of(
                    specs,
                    scale=scale,
                    paper=paper_cfg["paper"],
                    seed=seed,
                    env=exp["env"],
                    env_kwargs=sc["env_kwargs"],
                    runtime_min=sc.get("runtime_min", 60),
                )
                jobs.append(
                    RunJob(
                        scale=scale,
                        paper=paper_cfg["paper"],
                        experiment=exp_id,
                        method=method,
                        seed=seed,
                        env=exp["env"],
                        env_kwargs=dict(sc["env_kwargs"]),
                        iterations=sc["iterations"],
                        eval_every=sc["eval_every"],
                        checkpoint_every=sc.get("checkpoint_every", sc["eval_every"]),
                        runtime_min=sc.get("runtime_min", 60),
                        hparams=hp,
                        stages={j.name: j.stage_id for j in stages},
                        seed_group=group_of[seed],
                    )
                )
                stage_table.update({j.stage_id: j for j in stages})
    return jobs


@dataclass
class Workflow:
    """Everything the Snakefile needs, validated."""

    main: dict
    papers: dict[str, dict]
    paper_files: dict[str, Path]

    @property
    def scale(self) -> str:
        return self.main["scale"]

    def _expanded(self, paper: str) -> list[RunJob]:
        # expanded once per paper: the Snakefile asks for a job by its wildcards ~4x per job
        cache = self.__dict__.setdefault("_jobs", {})
        if paper not in cache:
            stage_tables = self.__dict__.setdefault("_stages", {})
            cache[paper] = expand_jobs(self.papers[paper], self.scale, stage_tables.setdefault(paper, {}))
            index = self.__dict__.setdefault("_index", {})
            index.update({(paper, j.experiment, j.method, j.seed): j for j in cache[paper]})
        return cache[paper]

    def jobs(self, paper: str | None = None) -> list[RunJob]:
        names = [paper] if paper else list(self.papers)
        return [j for p in names for j in self._expanded(p)]

    def job(self, paper: str, experiment: str, method: str, seed: int) -> RunJob:
        if paper in self.papers:
            self._expanded(paper)
        job = self.__dict__.get("_index", {}).get((paper, experiment, method, int(seed)))
        if job is None:
            raise KeyError(f"no run {layout.run_key(self.scale, paper, experiment, method, seed)}")
        return job

    def group_jobs(self, paper: str | None = None) -> dict[str, GroupJob]:
        """Group key -> group job, of ``paper``'s runs (every paper's without one)."""
        members: dict[str, list[RunJob]] = {}
        for j in self.jobs(paper):
            if j.seed_group:
                members.setdefault(j.group_key, []).append(j)
        return {key: GroupJob(tuple(runs)) for key, runs in members.items()}

    def group_job(self, paper: str, experiment: str, method: str, first: int, last: int) -> GroupJob:
        key = layout.group_key(self.scale, paper, experiment, method, first, last)
        job = self.group_jobs(paper).get(key) if paper in self.papers else None
        if job is None:
            raise KeyError(f"no seed group {key}")
        return job

    def stage_jobs(self, paper: str) -> dict[str, StageJob]:
        """Stage id -> stage job, of the stages ``paper``'s runs read."""
        self._expanded(paper)
        return self.__dict__["_stages"][paper]

    def stage_job(self, paper: str, stage_id: str) -> StageJob:
        job = self.stage_jobs(paper).get(stage_id) if paper in self.papers else None
        if job is None:
            raise KeyError(f"no stage {layout.stage_key(self.scale, paper, stage_id)}")
        return job

    def envs(self) -> dict[str, tuple[str, dict]]:
        if "_env_table" not in self.__dict__:
            self.__dict__["_env_table"] = {j.env_key: (j.env, j.env_kwargs) for j in self.jobs()}
        return self.__dict__["_env_table"]


def load_workflow(config: dict, root: Path = REPO_ROOT, source: str = "config/config.yaml") -> Workflow:
    # Snakemake read config/config.yaml with a lenient parser: re-read it for duplicated keys
    if (root / "config/config.yaml").is_file():
        load_yaml(root / "config/config.yaml")
    main = load_main(config, source)
    papers, files = {}, {}
    for i, paper in enumerate(main["papers"]):
        path = paper_path(main, paper, root)
        if not path.exists():
            known = sorted(p.stem for p in path.parent.glob("*.yaml"))
            fail(source, f"papers[{i}]", f"unknown paper {paper!r} (no {path}); known: {', '.join(known)}")
        papers[paper] = load_paper(path)
        files[paper] = path
    return Workflow(main, papers, files)


def load_from_files(
    config_file: Path = REPO_ROOT / "config/config.yaml", overrides: dict | None = None, root: Path = REPO_ROOT
) -> Workflow:
    """Outside Snakemake (CLI, tests): config file + command-line style overrides."""
    base = load_yaml(config_file) or {}
    base.update(overrides or {})
    return load_workflow(base, root, str(config_file))
