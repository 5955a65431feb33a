"""Tiny generated media files for the video tests (no test in here)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np


def grey_frame(value: int, size: int = 32) -> np.ndarray:
    """A flat frame whose grey level identifies it after lossy coding (+-3)."""
    return np.full((size, size, 3), value, dtype=np.uint8)


def write_video(path: Path, n_frames: int = 40, fps: int = 8, size: int = 32,
                frame: Callable[[int], np.ndarray] | None = None,
                pts_ms: Sequence[int] | None = None, codec: str = "libx264") -> Path:
    """An MP4 of ``n_frames`` frames (frame i: grey level 5 * i unless ``frame`` says), at a
    constant ``fps`` or at the given presentation times in milliseconds (variable rate)."""
    import av

    make = frame or (lambda i: grey_frame(5 * i, size))
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "10", "threads": "1"} if codec == "libx264" else {}
        if pts_ms is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        count = len(pts_ms) if pts_ms is not None else n_frames
        for i in range(count):
            vf = av.VideoFrame.from_ndarray(make(i), format="rgb24")
            if pts_ms is not None:
                vf.pts = int(pts_ms[i])
                vf.time_base = Fraction(1, 1000)
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_audio_only(path: Path, seconds: float = 1.0, rate: int = 16000) -> Path:
    """An M4A file with one AAC audio stream and no video."""
    import av

    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=rate)
        samples = np.zeros((1, int(seconds * rate)), dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def moving_square(direction: int, size: int = 32, colour: tuple[int, int, int] = (220, 40, 40),
                  n_frames: int = 16) -> Callable[[int], np.ndarray]:
    """Frames of a square sliding across a grey frame, left to right (1) or right to left (-1)."""
    def frame(i: int) -> np.ndarray:
        img = np.full((size, size, 3), 120, dtype=np.uint8)
        frac = i / max(n_frames - 1, 1)
        x = int(round((0.15 + 0.6 * frac if direction > 0 else 0.75 - 0.6 * frac) * size))
        img[size // 3: size // 3 + 8, x: x + 8] = colour
        return img
    return frame


def write_undecodable_video(path: Path, packets: int = 3) -> Path:
    """An MP4 with a well-formed video stream whose packets hold no decodable picture."""
    import av

    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for i in range(packets):
            packet = av.Packet(bytes(64))
            packet.stream = stream
            packet.pts = packet.dts = i * 2048
            packet.time_base = Fraction(1, 16384)
            container.mux(packet)
    return path


def make_tiny_clip(folder: Path, projection_dim: int = 24, image_size: int = 32) -> Path:
    """A randomly initialised tiny CLIPModel plus a character-level CLIP tokenizer, saved to
    ``folder`` so the ``clip`` extractor and text encoder load it offline."""
    import torch
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    chars = sorted(ByteLevel.alphabet())  # the 256 byte-level symbols
    vocab = {tok: i for i, tok in enumerate(chars + [c + "</w>" for c in chars])}
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    CLIPTokenizer(vocab=vocab, merges=[]).save_pretrained(folder)
    torch.manual_seed(0)
    text = {"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 2, "max_position_embeddings": 64,
            "bos_token_id": vocab["<|startoftext|>"], "eos_token_id": vocab["<|endoftext|>"],
            "pad_token_id": vocab["<|endoftext|>"]}
    vision = {"image_size": image_size, "patch_size": 8, "hidden_size": 32, "intermediate_size": 64,
              "num_hidden_layers": 2, "num_attention_heads": 2}
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=projection_dim)
    CLIPModel(config).save_pretrained(folder)
    return folder
