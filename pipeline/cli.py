"""Command line of the pipeline stages: ``python -m pipeline <stage> ...``.

Snakemake rules call these; each stage can also be run by hand. Every stage re-reads and
validates the configuration, so a run is fully determined by (config files, wildcards).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


from pipeline import REPO_ROOT, layout, yamlio
from pipeline.config import ConfigError, RunJob, Workflow, load_from_files
from pipeline.config_base import at_scale


def _workflow(args: argparse.Namespace) -> Workflow:
    overrides = {}
    for item in args.set or []:
        key, _, value = item.partition("=")
        overrides[key] = yamlio.load(value)
    if args.scale:
        overrides["scale"] = args.scale
    if args.papers:
        overrides["papers"] = args.papers.split(",")
    return load_from_files(Path(args.config_file), overrides)


def _layout(wf: Workflow) -> layout.Layout:
    """The configured layout: where a stage run by hand reads and writes (the rules pass
    their {input}/{output} paths explicitly)."""
    return layout.Layout(
        results=REPO_ROOT / wf.main["results_dir"], reports=REPO_ROOT / wf.main["reports_dir"], work=REPO_ROOT / "work"
    )


def _path(given: str | None, default: Path) -> Path:
    return Path(given) if given else default


def cmd_setup(args: argparse.Namespace) -> int:
    import envs

    from pipeline.config import env_key

    # the rule passes the env and its assets directory: then no paper config is read (the
    # Snakefile validated the selected ones), so a setup job neither validates the papers a run
    # did not select nor races another setup job over what their checks build (gymnasium-robotics
    # writes MaMuJoCo's many-segment swimmer XML into its package while checking a factorisation)
    wf = None if args.env is not None and args.assets_dir else _workflow(args)
    if args.env is not None:
        # the rule passes the env itself: its command then does not depend on which papers were
        # selected, so a run of one paper never re-runs a setup another paper shares
        name, kwargs = args.env, json.loads(args.env_kwargs or "{}")
        if env_key(name, kwargs) != args.env_key:
            raise SystemExit(
                f"setup: --env {name} with --env-kwargs {args.env_kwargs} is env key "
                f"{env_key(name, kwargs)}, not {args.env_key}"
            )
    else:
        name, kwargs = wf.envs()[args.env_key]
    env = envs.make(name, **kwargs)
    env.check_steps()
    assets = (
        Path(args.assets_dir) if wf is None else _path(args.assets_dir, _layout(wf).env_dir(wf.scale, args.env_key))
    )
    info = env.write_assets(assets)
    print(json.dumps(info, indent=2))
    return 0


def attempt_log(log: Path) -> Path:
    """Send this process's stdout and stderr to a new ``<stem>.attempt<N><suffix>`` beside
    ``log`` (the next free N) and make ``log`` a hard link to it; return the attempt's file.

    Snakemake deletes a job's declared log before every attempt, retries included, so a shell
    redirection into it keeps only the last attempt: the one a preempted or crashed attempt
    would explain. Here every attempt keeps its own file and the declared log is the latest."""
    log.parent.mkdir(parents=True, exist_ok=True)
    n = 1
    while True:
        attempt = log.with_name(f"{log.stem}.attempt{n}{log.suffix}")
        try:
            fd = os.open(attempt, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            n += 1
    tmp = log.with_name(f".{log.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(attempt, tmp)
    except OSError:  # a filesystem without hard links
        os.symlink(attempt.name, tmp)
    os.replace(tmp, log)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    return attempt


def cmd_train(args: argparse.Namespace) -> int:
    from pipeline.codehash import method_code_hash
    from pipeline.run import execute_train

    if args.log:
        attempt_log(Path(args.log))
    wf = _workflow(args)
    job = wf.job(args.paper, args.experiment, args.method, args.seed)
    paths = _layout(wf)
    if job.seed_group:  # its group job trained it (train-group): take its files
        from pipeline.groups import adopt_group_member

        member = paths.run_dir(layout.group_member(job.group_key, job.seed))
        return adopt_group_member(job, member, _path(args.run_dir, paths.run_dir(job.key)))
    return execute_train(
        job,
        run_dir=_path(args.run_dir, paths.run_dir(job.key)),
        ckpt_dir=paths.checkpoint_dir(job.key),
        device=wf.main["device"],
        threads=args.threads or wf.main["threads_per_run"],
        assets_dir=_path(args.assets_dir, paths.env_dir(wf.scale, job.env_key)),
        code_hash=method_code_hash(job.method, job.env),
        stage_dirs=_stage_dirs(paths, job.scale, job.paper, job.stages),
    )


def cmd_train_group(args: argparse.Namespace) -> int:
    from pipeline.codehash import group_code_hash
    from pipeline.groups import execute_group

    if args.log:
        attempt_log(Path(args.log))
    wf = _workflow(args)
    job = wf.group_job(args.paper, args.experiment, args.method, args.first, args.last)
    paths = _layout(wf)
    return execute_group(
        job,
        group_dir=_path(args.group_dir, paths.run_dir(job.key)),
        ckpt_dir=paths.checkpoint_dir(job.key),
        device=wf.main["device"],
        threads=args.threads or wf.main["threads_per_run"],
        assets_dir=_path(args.assets_dir, paths.env_dir(wf.scale, job.env_key)),
        code_hash=group_code_hash(job.method, job.env),
        stage_dirs=_stage_dirs(paths, job.scale, job.paper, job.stages),
    )


def _stage_dirs(paths: layout.Layout, scale: str, paper: str, stages: dict[str, str]) -> dict[str, Path]:
    return {name: paths.run_dir(layout.stage_key(scale, paper, i)) for name, i in stages.items()}


def cmd_stage(args: argparse.Namespace) -> int:
    from pipeline.codehash import stage_code_hash
    from pipeline.run import execute_stage

    if args.log:
        attempt_log(Path(args.log))
    wf = _workflow(args)
    job = wf.stage_job(args.paper, args.stage_id)
    paths = _layout(wf)
    return execute_stage(
        job,
        out_dir=_path(args.out_dir, paths.run_dir(job.key)),
        ckpt_dir=paths.checkpoint_dir(job.key),
        device=wf.main["device"],
        threads=args.threads or wf.main["threads_per_run"],
        assets_dir=_path(args.assets_dir, paths.env_dir(wf.scale, job.env_key)),
        code_hash=stage_code_hash(job.module, job.env),
        stage_dirs=_stage_dirs(paths, job.scale, job.paper, job.needs),
    )


def cmd_evaluate(args: argparse.Namespace) -> int:
    from pipeline.run import execute_evaluate

    wf = _workflow(args)
    job = wf.job(args.paper, args.experiment, args.method, args.seed)
    paths = _layout(wf)
    job = trained_job(job, _path(args.config, paths.run_file(job.key, layout.CONFIG)))
    res = execute_evaluate(
        job,
        model=_path(args.model, paths.run_file(job.key, layout.MODEL)),
        out=_path(args.out, paths.run_file(job.key, layout.EVAL)),
        device=wf.main["device"],
        assets_dir=_path(args.assets_dir, paths.env_dir(wf.scale, job.env_key)),
    )
    print(json.dumps(res["metrics"], indent=2))
    return 0


def trained_job(job: RunJob, config_file: Path) -> RunJob:
    """The job as train resolved it (its config.yaml), which evaluation uses instead of
    re-deriving it from the YAML: a model is always evaluated under the config it was trained
    with, and a config.yaml that no longer matches the paper config (a model left from another
    config, a hand-edited file) stops the job with the file named instead of evaluating quietly."""
    if not config_file.is_file():
        return job  # a model trained outside the DAG (tests, notebooks): the YAML's job
    try:
        trained = RunJob.from_resolved(yamlio.load_file(config_file), runtime_min=job.runtime_min)
    except (KeyError, TypeError) as e:
        raise ConfigError(f"{config_file}: not a run's resolved config (missing or bad field {e})") from e
    if trained.config_hash() != job.config_hash():
        differ = sorted(k for k, v in trained.resolved().items() if job.resolved().get(k) != v)
        raise ConfigError(
            f"{config_file}: the model beside it was trained with another config than "
            f"{job.key}'s (fields {', '.join(differ)}); rerun its train job"
        )
    return trained


def _paper_runs(wf: Workflow, paper: str) -> list[dict]:
    paths = _layout(wf)
    return [
        {"experiment": j.experiment, "method": j.method, "seed": j.seed, "dir": paths.run_dir(j.key)}
        for j in wf.jobs(paper)
    ]


def cmd_aggregate(args: argparse.Namespace) -> int:
    from pipeline import stats

    wf = _workflow(args)
    st = wf.main["stats"]
    reps = st["reps"] if isinstance(st["reps"], int) else st["reps"].get(wf.scale, 2000)
    paths = _layout(wf)
    stats.write(
        wf.papers[args.paper],
        _paper_runs(wf, args.paper),
        _path(args.summary, paths.summary(wf.scale, args.paper)),
        _path(args.stats, paths.stats(wf.scale, args.paper)),
        reps=reps,
        confidence=st["confidence"],
        random_state=st["random_state"],
        scale=wf.scale,
    )
    return 0


def cmd_figures(args: argparse.Namespace) -> int:
    from pipeline import figures

    wf = _workflow(args)
    paths = _layout(wf)
    cfg = wf.papers[args.paper]
    specs = [f for f in cfg["figures"] if not args.figure or f["id"] == args.figure]
    given = {"png": args.png, "pdf": args.pdf}
    summary = figures.read_summary(_path(args.summary, paths.summary(wf.scale, args.paper)))
    stats = figures.read_stats(_path(args.stats, paths.stats(wf.scale, args.paper)))
    for spec in specs:
        spec = {**spec, "title": at_scale(spec["title"], cfg, wf.scale)} if spec.get("title") else spec
        out = {
            fmt: _path(given[fmt] if args.figure else None, paths.figure(wf.scale, args.paper, spec["id"], fmt))
            for fmt in layout.FIGURE_FORMATS
        }
        print("\n".join(str(p) for p in figures.save(cfg, spec, summary, out, stats)))
    return 0


def cmd_claims(args: argparse.Namespace) -> int:
    from pipeline import claims, confounds

    wf = _workflow(args)
    paths = _layout(wf)
    cfg, st = wf.papers[args.paper], wf.main["stats"]
    stats_path = _path(args.stats, paths.stats(wf.scale, args.paper))
    stats_doc = json.loads(Path(stats_path).read_text(encoding="utf-8"))
    # what the runs measured they did, side against side; at smoke an unnamed difference stops
    # here (the smoke DAG is the check every config change goes through, CI included)
    problems = confounds.measured_problems(cfg, stats_doc)
    if problems and wf.scale == "smoke":
        where = wf.paper_files.get(args.paper, f"config/papers/{args.paper}.yaml")
        for field, problem in problems:
            print(f"{where}: {field}: {problem}", file=sys.stderr)
        return 2
    for c in claims.write(
        cfg,
        stats_path,
        _path(args.out, paths.claims(wf.scale, args.paper)),
        alpha=st["alpha"],
        correction=st["correction"],
        settings=confounds.settings_by_claim(cfg, wf.scale),
        measured=confounds.measured_by_claim(cfg, stats_doc),
    ):
        print(
            f"{c['id']}: {c['verdict']} — {c.get('reason', '')}"
            + (f"\n    {c['explanation']}" if c.get("explanation") else "")
        )
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    """False 'reproduced' rate and power at a 1-SD effect for the configured seed counts."""
    from pipeline import calibration

    wf = _workflow(args)
    rows = calibration.table(wf.papers, sims=args.sims)
    print(
        f"{'kind':10} {'n':>10} {'false reproduced':>17} {'power at 1 SD':>14}   (alpha {wf.main['stats']['alpha']}, "
        f"one claim, {args.sims} simulations each)"
    )
    for r in rows:
        n = " vs ".join(map(str, r["n"]))
        print(f"{r['kind']:10} {n:>10} {r['false_reproduced']:>17.3f} {r['power_1sd']:>14.3f}")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    """Before running: which claims the configured seed counts can decide, their power, and what
    the runs cost."""
    from pipeline import costs, power_plan

    wf = _workflow(args)
    measured = costs.load_measured(wf.scale)
    cost_rows = []
    for name, cfg in wf.papers.items():
        rows = power_plan.design(cfg, wf.scale, alpha=wf.main["stats"]["alpha"])
        print(
            f"{name} ({wf.scale}): {sum(r.get('status', '').startswith('decidable') for r in rows)} of "
            f"{len(rows)} claims decidable"
        )
        cost_rows.append(costs.paper_cost(cfg, wf.scale, measured))
        print("  " + costs.cost_line(cost_rows[-1]))
        for row in rows:
            print("  " + power_plan.design_line(row, wf.scale))
    print("\n" + costs.cost_table(cost_rows, measured, wf.scale))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from pipeline import report

    wf = _workflow(args)
    paths = _layout(wf)
    papers = []
    for name, cfg in wf.papers.items():
        claims_doc = json.loads(paths.claims(wf.scale, name).read_text())
        papers.append(
            {
                "cfg": cfg,
                "stats": json.loads(paths.stats(wf.scale, name).read_text()),
                "claims": claims_doc["claims"],
                "procedure": claims_doc.get("procedure"),
                "plumbing_only": claims_doc.get("plumbing_only", False),
                "figures": [paths.figure(wf.scale, name, f["id"]) for f in cfg["figures"]],
                "n_runs": len(wf.jobs(name)),
            }
        )
    out = report.build(wf.scale, papers, _path(args.out, paths.report(wf.scale)))
    print(out)
    return 0


def cmd_guards(args: argparse.Namespace) -> int:
    """The guards' findings on each selected paper's claims.json at the scale (pipeline/guards.py)."""
    from pipeline import guards

    wf = _workflow(args)
    paths = _layout(wf)
    for name in wf.papers:
        path = paths.claims(wf.scale, name)
        if not Path(path).is_file():
            print(f"{name}: no {path} yet")
            continue
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        print(f"{name} ({wf.scale}): {guards.summary(doc['claims'])}")
        for c in doc["claims"]:
            for line in guards.findings(c):
                print(f"  {c['id']}: {line}")
    return 0


def cmd_report_path(args: argparse.Namespace) -> int:
    wf = _workflow(args)
    print(f"report: {_layout(wf).report(wf.scale)}")
    return 0


def cmd_register(args: argparse.Namespace) -> int:
    from pipeline import tracking
    from pipeline.atomic import atomic_write_json

    wf = _workflow(args)
    paths = _layout(wf)
    uri = tracking.resolve_uri(wf.main["tracking"]["uri"], REPO_ROOT)
    tracking.ensure_store(uri)
    keys = [j.key for j in wf.jobs()]
    summary = tracking.register([paths.run_dir(k) for k in keys], paths.results, uri)
    if args.marker:
        atomic_write_json(args.marker, {"uri": uri.split("@")[-1], "runs": sorted(keys), **summary})
    print(json.dumps(summary))
    return 0


def cmd_init_tracking(args: argparse.Namespace) -> int:
    from pipeline import tracking

    from pipeline.atomic import atomic_write_json

    wf = _workflow(args)
    uri = tracking.resolve_uri(wf.main["tracking"]["uri"], REPO_ROOT)
    tracking.ensure_store(uri)
    if args.marker:
        atomic_write_json(args.marker, {"initialised": True})
    print(uri)
    return 0


def cmd_snapshot(args: argparse.Namespace) -> int:
    from pipeline import versioning

    wf = _workflow(args)
    remote = versioning.remote_url(wf.main.get("versioning", {}).get("remote", ""))
    versioning.ensure_dvc_repo(REPO_ROOT)
    reports = _layout(wf).reports
    paths = [wf.main["results_dir"]] + [str(p.relative_to(REPO_ROOT)) for p in sorted(reports.glob("*/")) if p.is_dir()]
    written = versioning.snapshot(REPO_ROOT, paths, remote)
    print("DVC files to commit:", " ".join(written))
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from pipeline import versioning

    wf = _workflow(args)
    remote = versioning.remote_url(wf.main.get("versioning", {}).get("remote", ""))
    extra = ["--config", f"scale={wf.scale}"] if args.scale else []
    versioning.restore(REPO_ROOT, remote, extra)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__)
    parser.add_argument("--config-file", default=str(REPO_ROOT / "config/config.yaml"))
    parser.add_argument("--scale", help="override config scale")
    parser.add_argument("--papers", help="comma-separated papers (override config)")
    parser.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override a top-level config key (YAML value)"
    )
    sub = parser.add_subparsers(dest="cmd", required=True)

    def run_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--paper", required=True)
        p.add_argument("--experiment", required=True)
        p.add_argument("--method", required=True)
        p.add_argument("--seed", type=int, required=True)

    # Path options: the rules pass their {input}/{output}; run by hand, a stage uses the
    # configured layout (pipeline/layout.py).
    p = sub.add_parser("setup")
    p.add_argument("--env-key", required=True)
    p.set_defaults(fn=cmd_setup)
    p.add_argument("--assets-dir", help="where the env's assets go (info.json last)")
    p.add_argument("--env", help="the env's name (else looked up by key in the selected papers)")
    p.add_argument("--env-kwargs", help="the env's keyword arguments, JSON (with --env)")
    p = sub.add_parser("train")
    run_args(p)
    p.add_argument("--threads", type=int)
    p.set_defaults(fn=cmd_train)
    p.add_argument("--log", help="write to <log stem>.attempt<N>.log, linked as LOG (one file per attempt)")
    p.add_argument("--run-dir", help="the run directory to write")
    p.add_argument("--assets-dir", help="the env's assets (setup's output)")
    p = sub.add_parser("train-group", help="train a seed group's runs in one process (seed_batch > 1)")
    p.add_argument("--paper", required=True)
    p.add_argument("--experiment", required=True)
    p.add_argument("--method", required=True)
    p.add_argument("--first", type=int, required=True, help="the group's first seed")
    p.add_argument("--last", type=int, required=True, help="the group's last seed")
    p.add_argument("--threads", type=int)
    p.set_defaults(fn=cmd_train_group)
    p.add_argument("--log", help="write to <log stem>.attempt<N>.log, linked as LOG (one file per attempt)")
    p.add_argument("--group-dir", help="the group's directory to write")
    p.add_argument("--assets-dir", help="the env's assets (setup's output)")
    p = sub.add_parser("stage", help="train a stage several runs read (methods/common/stages.py)")
    p.add_argument("--paper", required=True)
    p.add_argument("--stage-id", required=True)
    p.add_argument("--threads", type=int)
    p.set_defaults(fn=cmd_stage)
    p.add_argument("--log", help="write to <log stem>.attempt<N>.log, linked as LOG (one file per attempt)")
    p.add_argument("--out-dir", help="the stage directory to write")
    p.add_argument("--assets-dir", help="the env's assets (setup's output)")
    p = sub.add_parser("evaluate")
    run_args(p)
    p.set_defaults(fn=cmd_evaluate)
    p.add_argument("--model")
    p.add_argument("--out", help="eval.json to write")
    p.add_argument("--config", help="the run's config.yaml, written by train (default: the run dir's)")
    p.add_argument("--assets-dir", help="the env's assets (setup's output)")
    p = sub.add_parser("aggregate")
    p.add_argument("--paper", required=True)
    p.set_defaults(fn=cmd_aggregate)
    p.add_argument("--summary", help="summary.csv to write")
    p.add_argument("--stats", help="stats.json to write")
    p = sub.add_parser("figures")
    p.add_argument("--paper", required=True)
    p.set_defaults(fn=cmd_figures)
    p.add_argument("--figure", help="draw only this figure id")
    p.add_argument("--summary", help="summary.csv to read")
    p.add_argument("--stats", help="stats.json to read (sweep figures)")
    p.add_argument("--png", help="with --figure: the PNG to write")
    p.add_argument("--pdf", help="with --figure: the PDF")
    p = sub.add_parser("claims")
    p.add_argument("--paper", required=True)
    p.set_defaults(fn=cmd_claims)
    p.add_argument("--stats", help="stats.json to read")
    p.add_argument("--out", help="claims.json to write")
    p = sub.add_parser("report")
    p.add_argument("--out", help="index.html to write")
    p.set_defaults(fn=cmd_report)
    sub.add_parser("plan", help="which claims the seed counts can decide").set_defaults(fn=cmd_plan)
    p = sub.add_parser("calibrate", help="simulated error rate and power of the claims procedure")
    p.add_argument("--sims", type=int, default=2000)
    p.set_defaults(fn=cmd_calibrate)
    sub.add_parser("report-path").set_defaults(fn=cmd_report_path)
    sub.add_parser("guards", help="the guards' findings on the claims already decided").set_defaults(fn=cmd_guards)
    p = sub.add_parser("register")
    p.add_argument("--marker")
    p.set_defaults(fn=cmd_register)
    p = sub.add_parser("init-tracking")
    p.add_argument("--marker")
    p.set_defaults(fn=cmd_init_tracking)
    sub.add_parser("snapshot").set_defaults(fn=cmd_snapshot)
    sub.add_parser("restore").set_defaults(fn=cmd_restore)
    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
