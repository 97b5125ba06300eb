"""Paper A, Table 2: MoCo with NT-Xent (m = 0) and NT-Xent-AM (m = 0.1).

The paper's queue size and momentum are unverified (paper.md section 3.1); the profile's values apply.
"""

from search_spaces import Budget, Reference, Study

STUDY = Study(
    name="paper_table2",
    description="Paper A Table 2: MoCo, m in {0, 0.1}",
    fixed={"framework": "moco", "temperature": 1 / 30},
    grid=({"margin": 0.0}, {"margin": 0.1}),
    budgets={"cpu": Budget(fixed={"epochs": 8, "eval_every": 0})},
    references=(
        Reference("A, Table 2", {"margin": 0.0}, 9.59, 0.6974),
        Reference("A, Table 2", {"margin": 0.1}, 9.36, 0.6403),
    ),
)
