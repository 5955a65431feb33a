"""DMAE's dual-modal attention similarity (retrieval.md section 2.2), vectorised over a batch.

* token-wise interaction: each word takes its max cosine over frames (t2v, weighted mean over
  words); each frame takes its max over words (v2t, mean over frames); score = (t2v + v2t) / 2.
* textual attention (TWM): word weights, content words up-weighted, *per word* - WordPiece
  continuations (``##ing``) share their word's weight (the release works per character).
* visual attention (NFC): for each word's best frame f*, its most similar *other* frame f'
  (frame-frame cosine) adds ``nfc_weight * cos(f*, f') * sim(word, f')`` to the word's score,
  so near-duplicate frames reinforce a match and look-alike videos become harder negatives.

All inputs are L2-normalised embeddings; outputs are [Q, B] similarities in about [-1, 1.5].
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

_NEG = -1e4


def is_special_token(token: str) -> bool:
    """Tokenizer markers such as ``[CLS]``, ``[SEP]``, ``<s>``: never content words."""
    return len(token) > 2 and ((token[0], token[-1]) in {("[", "]"), ("<", ">")})


def word_level_weights(words: Sequence[Sequence[str]], length: int,
                       content_mask: Callable[[Sequence[str]], list[bool]],
                       content_weight: float = 2.0) -> torch.Tensor:
    """[Q, length] raw token weights: ``content_weight`` for the pieces of content words, else 1.

    A piece starting with ``##`` continues the previous word and shares its weight, so the
    decision is made once per whole word, by ``content_mask`` over the sentence's words (the
    project's ``vidlang.text.content_words.content_word_mask``). Special tokens weigh 1;
    positions past a string's tokens weigh 0.
    """
    out = torch.zeros(len(words), length)
    for q, toks in enumerate(words):
        spans: list[tuple[int, int]] = []
        for i, tok in enumerate(toks[:length]):
            if tok.startswith("##") and spans and not is_special_token(toks[spans[-1][0]]):
                spans[-1] = (spans[-1][0], i + 1)
            else:
                spans.append((i, i + 1))
        out[q, : min(len(toks), length)] = 1.0
        real = [(a, b) for a, b in spans if not is_special_token(toks[a])]
        text = ["".join(t.removeprefix("##") for t in toks[a:b]) for a, b in real]
        for (a, b), is_content in zip(real, content_mask(text)):
            if is_content:
                out[q, a:b] = content_weight
    return out


def release_character_weights(words: Sequence[Sequence[str]], length: int,
                              content_mask: Callable[[Sequence[str]], list[bool]],
                              content_weight: float = 2.0) -> torch.Tensor:
    """The released TWM's behaviour (a defect on English, kept for comparison): it tags each
    *character* (jieba, written for Chinese), so on WordPiece tokens only single-character
    tokens can be up-weighted; every longer token weighs 1."""
    out = torch.zeros(len(words), length)
    for q, toks in enumerate(words):
        toks = list(toks[:length])
        out[q, : len(toks)] = 1.0
        single = [i for i, t in enumerate(toks)
                  if len(t.removeprefix("##")) == 1 and not is_special_token(t)]
        for i, is_content in zip(single, content_mask([toks[i].removeprefix("##") for i in single])):
            if is_content:
                out[q, i] = content_weight
    return out


# model.twm_unit -> raw weight builder (vidlang's word level by default; the release per character)
TWM_UNITS: dict[str, Callable[..., torch.Tensor]] = {
    "word": word_level_weights, "release_character": release_character_weights}


def normalise_weights(weights: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Weights zeroed outside ``mask`` and scaled to sum 1 per row (uniform if all zero)."""
    w = weights * mask.to(weights.dtype)
    total = w.sum(dim=-1, keepdim=True)
    uniform = mask.to(weights.dtype) / mask.sum(dim=-1, keepdim=True).clamp_min(1)
    return torch.where(total > 0, w / total.clamp_min(1e-12), uniform)


def nearest_other_frame(frames: torch.Tensor, mask: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each frame: index of its most similar other valid frame, that cosine, and whether
    one exists (videos with one valid frame have none). Shapes [B, T] each."""
    t = frames.shape[1]
    fsim = frames @ frames.transpose(1, 2)
    eye = torch.eye(t, dtype=torch.bool, device=frames.device)
    allowed = mask[:, None, :] & ~eye[None]
    best, idx = fsim.masked_fill(~allowed, _NEG).max(dim=-1)
    exists = allowed.any(dim=-1) & mask
    return idx, best.masked_fill(~exists, 0.0), exists


def token_wise_similarity(tokens: torch.Tensor, token_weights: torch.Tensor,
                          token_mask: torch.Tensor, frames: torch.Tensor,
                          frame_mask: torch.Tensor, nfc_weight: float = 0.5) -> torch.Tensor:
    """DMAE's word-frame score [Q, B] (see module docstring).

    tokens [Q, L, D], token_weights [Q, L] (summing to 1 over valid tokens), token_mask [Q, L],
    frames [B, T, D], frame_mask [B, T]; ``nfc_weight = 0`` turns visual attention off.
    """
    sim = torch.einsum("qld,btd->qblt", tokens, frames)
    fm = frame_mask[None, :, None, :]
    best, best_idx = sim.masked_fill(~fm, _NEG).max(dim=-1)  # [Q, B, L]
    if nfc_weight:
        nbr_idx, nbr_cos, has_nbr = nearest_other_frame(frames, frame_mask)
        q, b, l_len, t = sim.shape
        expand = (q, b, l_len, t)
        nbr = nbr_idx[None, :, None, :].expand(expand).gather(-1, best_idx[..., None])
        cos = nbr_cos[None, :, None, :].expand(expand).gather(-1, best_idx[..., None])
        ok = has_nbr[None, :, None, :].expand(expand).gather(-1, best_idx[..., None])
        bonus = nfc_weight * cos * sim.gather(-1, nbr) * ok.to(sim.dtype)
        best = best + bonus.squeeze(-1)
    t2v = (best * token_weights[:, None, :]).sum(dim=-1)
    tm = token_mask[:, None, :, None]
    per_frame = sim.masked_fill(~tm, _NEG).max(dim=2).values  # [Q, B, T]
    fmask = frame_mask[None].to(sim.dtype)
    v2t = (per_frame * fmask).sum(-1) / fmask.sum(-1).clamp_min(1)
    return 0.5 * (t2v + v2t)
