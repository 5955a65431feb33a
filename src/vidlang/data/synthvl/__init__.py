"""SynthVL: vidlang's embedded, procedurally generated video-language benchmark.

``generate(out_dir, preset="small", seed=0, **overrides)`` writes a folder in vidlang's
canonical formats; ``load(out_dir, split)`` reads a split back; the ``synthvl`` entry of
``vidlang.registry.DATASETS`` serves it to the engine (``root`` = that folder).
See docs/synthvl.md for the generative process, the knobs and the layout.
"""

from vidlang.data.synthvl.config import PRESETS, SPLITS, SynthVLConfig, make_config, parse_overrides
from vidlang.data.synthvl.generate import FEATURES_FILE, META_FILE, generate
from vidlang.data.synthvl.language import MCQuestion
from vidlang.data.synthvl.loader import SynthVLDataset, SynthVLSplit, load, read_meta
from vidlang.data.synthvl.world import World, build_world

__all__ = [
    "FEATURES_FILE",
    "META_FILE",
    "PRESETS",
    "SPLITS",
    "MCQuestion",
    "SynthVLConfig",
    "SynthVLDataset",
    "SynthVLSplit",
    "World",
    "build_world",
    "generate",
    "load",
    "make_config",
    "parse_overrides",
    "read_meta",
]
