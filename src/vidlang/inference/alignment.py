"""Alignment inference (TempCLR, docs/models.md): a paragraph of ordered sentences <-> a video.

``AlignmentPredictor.from_pretrained(run).predict(video, sentences)`` embeds the paragraph and
the video as the evaluation does (``TempCLR.predict``): per-second frame embeddings for step
localisation (one time per sentence, in order: ``decode_step_times``) and the video cut into
the run's fixed windows (``eval.overrides.window`` / ``stride``) for the background-kept
paragraph-to-video score (minus the DTW / OTAM distance to the nearest windows, or the
caption average). No ground-truth windows are needed, so a new video works.

    predictor = AlignmentPredictor.from_pretrained("runs/tempclr_synthvl")
    out = predictor.predict("cooking.mp4", ["crack the eggs", "whisk", "pour into the pan"])
    out["step_times"], out["score"]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vidlang.errors import ConfigError, DataError
from vidlang.inference.base import Predictor, VideoInput

SCORE_KINDS = ("dtw", "otam", "cap_avg")


@dataclass
class VideoEmbedding:
    """A video as the alignment model sees it (all L2-normalised, on the CPU)."""

    frames: torch.Tensor  # [T, D] per-feature-row embeddings (step localisation)
    pooled: torch.Tensor  # [D] the whole video
    windows: torch.Tensor  # [K, D] one pooled vector per fixed window
    window_spans: list[tuple[float, float]]  # the K windows in seconds
    duration: float


class AlignmentPredictor(Predictor):
    """Step times and paragraph-to-video scores from one alignment model, loaded once."""

    def __init__(self, model: Any, device: str | torch.device = "cpu", ckpt: Path | None = None,
                 options: Any = None) -> None:
        if getattr(model, "task", None) != "alignment":
            raise ConfigError(f"AlignmentPredictor needs an alignment model, got task {getattr(model, 'task', None)!r}")
        from vidlang.engine.pipelines.alignment import AlignmentDataConfig, AlignmentEvalOptions

        self.device = torch.device(device)
        super().__init__(model.to(self.device).eval(), ckpt)
        #: the run's ``eval.overrides`` (window, stride, keep_ratio, quirks); defaults without a run
        self.options = options if options is not None else AlignmentEvalOptions()
        self.max_clip_frames = AlignmentDataConfig.max_clip_frames

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device | None = None) -> AlignmentPredictor:
        """Load a model folder (or a run folder holding ``best/`` or ``last/``) with the run's
        evaluation options."""
        from vidlang.engine.checkpoint import load_config_of, load_model
        from vidlang.engine.pipelines.alignment import eval_options

        dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
        cfg = load_config_of(path)
        predictor = cls(load_model(path, map_location=dev), dev, Path(path), eval_options(cfg))
        predictor.max_clip_frames = int(getattr(cfg.data, "max_clip_frames", predictor.max_clip_frames))
        return predictor

    @property
    def quirks(self) -> bool:
        """Whether the run evaluates with the release's quirks (as the alignment pipeline reads it)."""
        return self.options.reproduce_upstream_quirks or \
            bool(getattr(self.model.cfg, "tempclr_faithful_eval", False))

    @property
    def normalise(self) -> str:
        """The distance normalisation of the run's paragraph-to-video scores."""
        return "area" if self.quirks else str(getattr(self.model.cfg, "eval_normalise", "path"))

    @torch.no_grad()
    def embed_paragraph(self, sentences: str | Sequence[str]) -> torch.Tensor:
        """[N, D] L2-normalised sentence vectors, in the paragraph's order (on the CPU)."""
        texts = [sentences] if isinstance(sentences, str) else list(sentences)
        if not texts or not all(isinstance(s, str) and s.strip() for s in texts):
            raise DataError("sentences must be one or more non-empty strings")
        return self.model.sentence_vectors(texts).cpu()

    @torch.no_grad()
    def embed_video(self, video: VideoInput, duration: float | None = None, extractor: str | None = None,
                    extractor_model: str | None = None) -> VideoEmbedding:
        """Embed a video file (featurised as the run's training features were) or its raw
        [T, D] features (``duration`` in seconds then required)."""
        from vidlang.engine.pipelines.alignment import cut_windows, window_frames
        from vidlang.engine.pipelines.features import gather_rows, prepare_features

        raw, seconds = self.features_of(video, duration, extractor, extractor_model)
        if not seconds or seconds <= 0:
            raise DataError(f"duration must be > 0 seconds, got {seconds}")
        feats = prepare_features(raw, self.model.feature_spec(), "input")
        spans = cut_windows(float(seconds), self.options.window, self.options.stride)
        rows = [window_frames(w, feats.shape[0], float(seconds), self.max_clip_frames, "input")
                for w in spans]
        win_feats, win_mask = gather_rows([feats], [rows])
        whole = self.model.video_repr(feats[None].to(self.device),
                                      torch.ones(1, feats.shape[0], dtype=torch.bool, device=self.device))
        windows = self.model.video_repr(win_feats.to(self.device), win_mask.to(self.device)).pooled
        return VideoEmbedding(whole.clips[0].cpu(), whole.pooled[0].cpu(), windows.cpu(), spans,
                              float(seconds))

    def predict(self, video: VideoInput, sentences: str | Sequence[str], duration: float | None = None,
                kind: str = "dtw", extractor: str | None = None,
                extractor_model: str | None = None) -> dict[str, Any]:
        """Align a paragraph with a video (file or raw [T, D] features + ``duration``):
        ``step_times`` (seconds, one per sentence, in order), ``score`` (background-kept
        paragraph-to-video score of ``kind``: higher = closer), ``kind`` and ``windows``."""
        if kind not in SCORE_KINDS:
            raise ConfigError(f"kind: {kind!r} is not one of {SCORE_KINDS}")
        text = self.embed_paragraph(sentences)
        emb = self.embed_video(video, duration, extractor, extractor_model)
        return {"step_times": self.step_times(text, emb), "score": self.score(text, emb, kind),
                "kind": kind, "windows": [list(w) for w in emb.window_spans]}

    @staticmethod
    def step_times(text: torch.Tensor, video: VideoEmbedding) -> list[float]:
        """Each sentence's time in seconds, in order (the evaluation's step decoding)."""
        from vidlang.metrics.step_decoding import decode_step_times

        return decode_step_times(video.frames.float(), text.float(), video.duration)

    def score(self, text: torch.Tensor, video: VideoEmbedding, kind: str = "dtw") -> float:
        """Background-kept paragraph-to-video score (the evaluation's ``p2v/bg_kept/<kind>``)."""
        from vidlang.metrics.alignment import background_kept_scores

        ones = torch.ones(1, text.shape[0], dtype=torch.bool)
        wmask = torch.ones(1, video.windows.shape[0], dtype=torch.bool)
        sim = background_kept_scores(text.float()[None], ones, video.windows.float()[None], wmask, kind,
                                     self.normalise, self.options.keep_ratio, self.quirks)
        return float(sim[0, 0])
