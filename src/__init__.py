"""seq2seq-lab: attention-based sequence-to-sequence translation with Lightning and Hydra.

Importing the package bounds how long an idle OpenMP thread spins before it sleeps (`GOMP_SPINCOUNT=10000`
for GNU OpenMP, the runtime of PyTorch's Linux builds), unless the environment sets `OMP_WAIT_POLICY` or
`GOMP_SPINCOUNT` itself. OpenMP reads both once, when torch loads its thread pool, which is why this happens
here, before any module of the package imports torch. With OpenMP's default (300,000 spins) two torch
processes that share the cores (tests beside a training run, two experiments on a laptop) take the cores
from each other with spinning threads, and each runs several times slower; `OMP_WAIT_POLICY=PASSIVE` (sleep at
once) would cure that but costs a run alone about half again, because torch's many small parallel regions
then pay a wake-up each. Measured in docs/BENCHMARK.md, "Two jobs on one machine".
"""

import os

if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "10000")
