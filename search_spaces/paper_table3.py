"""Paper A, Table 3: class collisions and class imbalance, SimCLR symmetric at m = 0.1.

Removing collisions = never two utterances of one speaker in a batch; removing imbalance = the same number of
utterances per speaker each epoch. The paper's per-speaker cap is unverified (paper.md section 8); 100 is our
choice for VoxCeleb2 (about 180 utterances per speaker on average). The embedded corpus is balanced already
(a few utterances per speaker, all under the cap), so there the last two rows train on the same batches.
"""

from search_spaces import Budget, Reference, Study

CAP = 100
"""Utterances per speaker per epoch in the 'no imbalance' row (paper profile)."""

STUDY = Study(
    name="paper_table3",
    description="Paper A Table 3: class collisions / imbalance, SimCLR symmetric m=0.1",
    fixed={"framework": "simclr", "symmetric": True, "margin": 0.1, "temperature": 1 / 30},
    grid=(
        {"prevent_class_collisions": False, "max_utterances_per_speaker": 0},
        {"prevent_class_collisions": True, "max_utterances_per_speaker": 0},
        {"prevent_class_collisions": True, "max_utterances_per_speaker": CAP},
    ),
    budgets={"cpu": Budget(fixed={"epochs": 8, "eval_every": 0})},
    references=(
        Reference("A, Table 3", {"prevent_class_collisions": False, "max_utterances_per_speaker": 0}, 7.85, 0.6168),
        Reference("A, Table 3", {"prevent_class_collisions": True, "max_utterances_per_speaker": 0}, 7.95, 0.6241),
        Reference("A, Table 3", {"prevent_class_collisions": True, "max_utterances_per_speaker": CAP}, 8.41, 0.6390),
    ),
)
