"""NT-Xent with an additive margin on the positive pair (NT-Xent-AM), paper.md section 2.

One loss serves both frameworks: callers pass a matrix of cosines between anchors and candidates and the
index of each anchor's positive; excluded candidates (self-similarity) are -inf. SimCLR builds it from the
(all-gathered) batch, MoCo from the positive key and the queue.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent_am(cosines: torch.Tensor, positive: torch.Tensor, margin: float, temperature: float) -> torch.Tensor:
    """Mean over anchors of -log softmax at the positive, with logits (cos - m*[positive]) / temperature.

    cosines: (A, C) anchor-candidate cosines; -inf marks candidates that are neither positive nor negative.
    positive: (A,) long index of each anchor's positive candidate.
    """
    if cosines.dtype not in (torch.float32, torch.float64):
        cosines = cosines.float()  # bf16/fp16 cosines from autocast: the loss is always computed in fp32
    margins = F.one_hot(positive, cosines.shape[1]).to(cosines.dtype) * margin  # (A, C)
    logits = (cosines - margins) / temperature  # (A, C)
    return F.cross_entropy(logits, positive)


def simclr_cosines(
    anchors: torch.Tensor, candidates: torch.Tensor, offset: int, symmetric: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosines and positive indices of the SimCLR losses for this process's anchors.

    anchors: (2, n, D) L2-normalised local embeddings of view 1 and view 2.
    candidates: (2, N, D) the same for the global batch (all-gathered; equal to anchors on one process).
    offset: global index of this process's first utterance.
    symmetric: True -> L^(S): 2n anchors, each against all 2N embeddings minus itself (2(N-1) negatives).
               False -> L: view-1 anchors against view-2 candidates only (N-1 negatives).
    Returns (cosines (A, C), positive (A,)).
    """
    _, n, _ = anchors.shape
    N = candidates.shape[1]
    local = torch.arange(n, device=anchors.device) + offset  # (n,) global utterance index
    if not symmetric:
        return anchors[0] @ candidates[1].T, local  # (n, N), (n,)
    flat_anchors = anchors.reshape(2 * n, -1)  # (2n, D): view 1 then view 2
    flat_candidates = candidates.reshape(2 * N, -1)  # (2N, D): view 1 then view 2
    cosines = flat_anchors @ flat_candidates.T  # (2n, 2N)
    own = torch.cat([local, local + N])  # (2n,) index of the anchor itself among candidates
    positive = torch.cat([local + N, local])  # (2n,) index of the other view of the same utterance
    is_self = torch.zeros_like(cosines, dtype=torch.bool)  # (2n, 2N)
    is_self[torch.arange(2 * n, device=anchors.device), own] = True
    return cosines.masked_fill(is_self, float("-inf")), positive


def moco_cosines(queries: torch.Tensor, keys: torch.Tensor, queue: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosines of the MoCo loss L^(Q): the positive key first, then the K queue negatives.

    queries: (n, D), keys: (n, D) (no gradient), queue: (K, D); all L2-normalised.
    Returns (cosines (n, 1 + K), positive (n,) = zeros).
    """
    positive_cos = (queries * keys).sum(dim=1, keepdim=True)  # (n, 1)
    negative_cos = queries @ queue.T  # (n, K)
    positive = torch.zeros(queries.shape[0], dtype=torch.long, device=queries.device)
    return torch.cat([positive_cos, negative_cos], dim=1), positive
