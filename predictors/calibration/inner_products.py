"""Inner products of model outputs, formed chunk-wise: the arithmetic behind the calibration Gram (``gram.py``).

Element blocks of ``chunk_elements`` are multiplied in ``compute_dtype`` on the tensors' device and the block results
are summed in float64, so float32 round-off stays that of a short sum whatever the number of elements, and temporary
memory stays bounded.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import torch

#: elements per float32 block when dot products are formed chunk-wise (bounds temporary memory, keeps float32
#: partial sums short before they are accumulated in float64)
DEFAULT_CHUNK_ELEMENTS = 1 << 16


def cross_gram(left: torch.Tensor, right: torch.Tensor, chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
               compute_dtype: torch.dtype = torch.float32) -> np.ndarray:
    """float64 [m, k]: <left[a], right[b]> for rows left [m, E] and right [k, E] (same device).

    Element blocks of ``chunk_elements`` are multiplied in ``compute_dtype`` on the tensors' device and the block
    results are summed in float64, so float32 round-off stays that of a short sum whatever E is.
    """
    if left.ndim != 2 or right.ndim != 2 or left.shape[1] != right.shape[1]:
        raise ValueError(f"cross_gram needs [m, E] and [k, E] with the same E, got {tuple(left.shape)} and "
                         f"{tuple(right.shape)}")
    if chunk_elements < 1:
        raise ValueError(f"chunk_elements must be >= 1, got {chunk_elements}")
    acc = torch.zeros((left.shape[0], right.shape[0]), dtype=torch.float64, device=left.device)
    for start in range(0, left.shape[1], chunk_elements):
        a = left[:, start:start + chunk_elements].to(compute_dtype)
        b = right[:, start:start + chunk_elements].to(compute_dtype)
        acc += (a @ b.T).to(torch.float64)
    return acc.cpu().numpy()


def cross_gram_rows(left: torch.Tensor, right: torch.Tensor, chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
                    compute_dtype: torch.dtype = torch.float32) -> np.ndarray:
    """float64 [N, m, k]: ``cross_gram`` per batch row, for left [m, N, E] and right [k, N, E] (row n of both is
    one sample). The same chunked float32 products, accumulated in float64."""
    if left.ndim != 3 or right.ndim != 3 or left.shape[1:] != right.shape[1:]:
        raise ValueError(f"cross_gram_rows needs [m, N, E] and [k, N, E] with the same N and E, got "
                         f"{tuple(left.shape)} and {tuple(right.shape)}")
    if chunk_elements < 1:
        raise ValueError(f"chunk_elements must be >= 1, got {chunk_elements}")
    acc = torch.zeros((left.shape[1], left.shape[0], right.shape[0]), dtype=torch.float64, device=left.device)
    for start in range(0, left.shape[2], chunk_elements):
        a = left[:, :, start:start + chunk_elements].to(compute_dtype)
        b = right[:, :, start:start + chunk_elements].to(compute_dtype)
        acc += torch.einsum("mne,kne->nmk", a, b).to(torch.float64)
    return acc.cpu().numpy()


def gram_from_pieces(pieces: Iterable[torch.Tensor | np.ndarray], chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
                     compute_dtype: torch.dtype = torch.float32) -> np.ndarray:
    """float64 [K, K]: the Gram of K rows given as element pieces.

    Each piece is [K, E_p]: the same K rows (e.g. R*S (role, step) outputs of one sample, in G's index order
    r*S + s), each restricted to some elements (a slice of the flattened tensors, or one batch row). Every element
    of the whole must appear in exactly one piece; then the result equals the Gram of the whole rows, because an
    inner product is a sum over elements.
    """
    total = None
    for piece in pieces:
        piece_t = torch.as_tensor(piece)
        if piece_t.ndim != 2:
            raise ValueError(f"a piece must be [K, elements], got shape {tuple(piece_t.shape)}")
        g = cross_gram(piece_t, piece_t, chunk_elements, compute_dtype)
        if total is None:
            total = g
        elif total.shape != g.shape:
            raise ValueError(f"pieces disagree on the number of rows: {total.shape[0]} then {g.shape[0]}")
        else:
            total += g
    if total is None:
        raise ValueError("gram_from_pieces needs at least one piece")
    return total
