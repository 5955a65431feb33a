"""Retrieval scoring throughput: CLIP4Clip sentence similarity vs DMAE's token-wise att_ti.

Scores Q texts against a gallery of B videos (MSR-VTT 1k-A shape by default: 1,000 x 1,000,
12 frames, 20 tokens, 512-d embeddings) from pre-encoded, L2-normalised random embeddings
(seed 0), in query chunks as the retrieval pipeline does (``data.eval_chunk``). Prints
texts/s for each similarity and the size of the largest intermediate ([chunk, B, L, T]
floats). Target: DMAE scoring of the full 1k-A matrix stays under a minute on 2 CPU cores.

    python benchmarks/bench_retrieval.py          # 1000 x 1000
    python benchmarks/bench_retrieval.py --quick  # 200 x 200 (for `make bench`)
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from vidlang.models.blocks.token_sim import normalise_weights, token_wise_similarity


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--videos", type=int, default=1000)
    p.add_argument("--frames", type=int, default=12)
    p.add_argument("--tokens", type=int, default=20)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--chunk", type=int, default=64)
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    if a.quick:
        a.queries, a.videos = 200, 200
    gen = torch.Generator().manual_seed(0)
    sent = F.normalize(torch.randn(a.queries, a.dim, generator=gen), dim=-1)
    toks = F.normalize(torch.randn(a.queries, a.tokens, a.dim, generator=gen), dim=-1)
    tmask = torch.ones(a.queries, a.tokens, dtype=torch.bool)
    tw = normalise_weights(torch.ones(a.queries, a.tokens), tmask)
    frames = F.normalize(torch.randn(a.videos, a.frames, a.dim, generator=gen), dim=-1)
    fmask = torch.ones(a.videos, a.frames, dtype=torch.bool)
    pooled = F.normalize(frames.mean(1), dim=-1)

    def sentence(i: int, j: int) -> torch.Tensor:
        return sent[i:j] @ pooled.t()

    def att_ti(nfc: float):
        def run(i: int, j: int) -> torch.Tensor:
            words = token_wise_similarity(toks[i:j], tw[i:j], tmask[i:j], frames, fmask, nfc)
            return 0.5 * (sentence(i, j) + words)
        return run

    print(f"{a.queries} texts x {a.videos} videos, T={a.frames}, L={a.tokens}, D={a.dim}, "
          f"chunk {a.chunk}, torch threads {torch.get_num_threads()}")
    inter = a.chunk * a.videos * a.tokens * a.frames * 4 / 2**20
    print(f"largest token-wise intermediate: {inter:.0f} MiB per [chunk, B, L, T] tensor")
    for name, fn in (("sentence (CLIP4Clip)", sentence), ("att_ti, no NFC", att_ti(0.0)),
                     ("att_ti + NFC (DMAE)", att_ti(0.5))):
        start = time.perf_counter()
        with torch.no_grad():
            for i in range(0, a.queries, a.chunk):
                fn(i, min(i + a.chunk, a.queries))
        sec = time.perf_counter() - start
        print(f"{name:22s} {sec:7.2f} s  {a.queries / sec:9.0f} texts/s")


if __name__ == "__main__":
    main()
