"""Build the offline demo collection that ``make serve`` serves (docs/serve.md).

    python scripts/build_serve_demo.py --out serve_demo            # 120 videos, seed 0
    vidlang serve serve_demo/index --grounding-ckpt serve_demo/mmn --videos serve_demo/web

Steps (each skipped when its output exists): render SynthVL-video -> ``basic`` features ->
train a dual encoder (retrieval/synthvl_cpu, frozen offline MiniLM) and an MMN (mmn/cpu) on
the train split -> index every video -> a VP8 WebM copy of each video for the browser
(FFmpeg's mpeg4, the render's codec, does not play in Chromium). Prints the time of each step.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from vidlang.serve.demo import build_demo_collection

# enough updates on a few dozen training videos (the configs' own schedules assume 240+)
RETRIEVAL = ["data.batch_size=16", "trainer.max_epochs=40"]
GROUNDING = ["data.batch_size=4", "trainer.max_epochs=12", "optim.scheduler.milestones=[9]",
             "model.only_iou_epochs=9", "data.select_split=null"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("serve_demo"))
    ap.add_argument("--videos", type=int, default=120)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    started = time.perf_counter()

    def say(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {message}", flush=True)

    paths = build_demo_collection(args.out, n_videos=args.videos, seed=args.seed,
                                  retrieval=RETRIEVAL, grounding=GROUNDING, say=say)
    print(f"serve it: vidlang serve {paths.index} --grounding-ckpt {paths.grounding} --videos {paths.web}")


if __name__ == "__main__":
    main()
