"""The smoke DAG must stay within CI's time as papers are added (issue: <= 8 min for ten papers
on 2 cores, ~48 s a paper). Counted, not timed: each paper's smoke scale may plan at most
SMOKE_RUNS_PER_PAPER runs (a train and an evaluate job each) and each run at most
SMOKE_STEPS_PER_RUN training iterations / environment steps. With the job server a smoke job
costs its work plus ~0.3 s (bench/README.md: measured per-paper smoke times)."""

from __future__ import annotations

from pipeline.config import load_from_files

SMOKE_RUNS_PER_PAPER = 44
SMOKE_STEPS_PER_RUN = {"gfn": 60, "control": 1200, "marl": 200, "video": 20}
# the stages runs read (VPDD's tokenizer and video pre-training): at most this many jobs a paper,
# each at most its family's steps
SMOKE_STAGES_PER_PAPER = 6


def test_every_paper_fits_the_smoke_budget():
    wf = load_from_files(overrides={"scale": "smoke"})
    for paper, cfg in wf.papers.items():
        jobs = wf.jobs(paper)
        assert len(jobs) <= SMOKE_RUNS_PER_PAPER, (paper, len(jobs))
        limit = SMOKE_STEPS_PER_RUN[cfg["family"]]
        long = [(j.key, j.iterations) for j in jobs if j.iterations > limit]
        assert not long, (paper, long)
        stages = wf.stage_jobs(paper).values()
        assert len(stages) <= SMOKE_STAGES_PER_PAPER, (paper, len(stages))
        assert not [(s.key, s.settings["steps"]) for s in stages if s.settings["steps"] > limit], paper
