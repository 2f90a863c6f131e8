import os

# Tests share two cores with whatever else runs; one intra-op thread keeps them deterministic and fair.
os.environ.setdefault("OMP_NUM_THREADS", "1")
