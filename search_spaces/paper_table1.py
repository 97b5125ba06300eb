"""Paper A, Table 1: SimCLR, non-symmetric NT-Xent at m = 0, then the symmetric loss at m in {0, 0.05, 0.1, 0.2}."""

from search_spaces import Budget, Reference, Study

STUDY = Study(
    name="paper_table1",
    description="Paper A Table 1: SimCLR, symmetric vs not at m=0, symmetric m in {0, 0.05, 0.1, 0.2}",
    fixed={"framework": "simclr", "temperature": 1 / 30},
    grid=(
        {"symmetric": False, "margin": 0.0},
        {"symmetric": True, "margin": 0.0},
        {"symmetric": True, "margin": 0.05},
        {"symmetric": True, "margin": 0.1},
        {"symmetric": True, "margin": 0.2},
    ),
    budgets={"cpu": Budget(fixed={"epochs": 8, "eval_every": 0})},
    references=(
        Reference("A, Table 1", {"symmetric": False, "margin": 0.0}, 8.98, 0.6714),
        Reference("A, Table 1", {"symmetric": True, "margin": 0.0}, 8.41, 0.6235),
        Reference("A, Table 1", {"symmetric": True, "margin": 0.05}, 8.35, 0.6098),
        Reference("A, Table 1", {"symmetric": True, "margin": 0.1}, 7.85, 0.6168),
        Reference("A, Table 1", {"symmetric": True, "margin": 0.2}, 8.13, 0.6211),
    ),
)
