"""Multiple-choice video QA with the retrieval encoders (``dual_encoder_mcqa``, ``dmae_mcqa``).

Each candidate is scored as sim(video, question ⊕ candidate) with the model's similarity; the
task loss is the cross-entropy over a question's candidates, the prediction its argmax.
Multi-level alignment (``multilevel.enabled``; λ_g = 1 for QA) adds the global pair
(video, question ⊕ correct answer) and, when the batch has time-stamped text, segment pairs.

MCQA batch (built by the ``mcqa`` pipeline, ``vidlang.engine.pipelines.mcqa``)::

    video_ids    list[str]              B videos (one question per row)
    feats        FloatTensor [B, T, D]  clip features; feat_mask BoolTensor [B, T]
    durations    FloatTensor [B]        seconds
    qids         list[str]              B question ids
    questions    list[str]              B
    candidates   list[list[str]]        B lists of K_b candidate answers
    answers      LongTensor  [B]        index of the correct candidate (-1 = unknown)
    seg_video / seg_windows / seg_texts optional segment pairs (e.g. the QA span)
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from vidlang.errors import DataError
from vidlang.models.base import TrainState
from vidlang.models.reprs import TextRepr
from vidlang.models.retrieval import DMAE, DualEncoder
from vidlang.registry import MODELS


def join_qa(question: str, answer: str) -> str:
    """The text scored for one candidate: question ⊕ answer."""
    return f"{question.strip()} {answer.strip()}"


class MultipleChoiceMixin:
    """Candidate scoring, loss and prediction, shared by both encoders."""

    task: ClassVar[str] = "mcqa"

    def candidate_scores(self: Any, batch: dict[str, Any]) -> tuple[torch.Tensor, Any, TextRepr,
                                                                   list[int]]:
        """Logits [B, K_max] (-inf at missing candidates), the video and text reprs, and the
        flat row of each question's first candidate."""
        questions, candidates = list(batch["questions"]), list(batch["candidates"])
        if len(questions) != batch["feats"].shape[0] or len(candidates) != len(questions):
            raise DataError("mcqa batch: need one question and one candidate list per video")
        flat: list[str] = []
        owner: list[int] = []
        first: list[int] = []
        for b, (q, cands) in enumerate(zip(questions, candidates)):
            if len(cands) < 2:
                raise DataError(f"question has {len(cands)} candidates (need >= 2)",
                                record=str(batch["qids"][b]))
            first.append(len(flat))
            flat += [join_qa(q, c) for c in cands]
            owner += [b] * len(cands)
        video = self.video_repr(batch["feats"], batch["feat_mask"])
        text = self.text_repr(flat)
        sim = self.similarity(text, video)  # [N, B]
        own = torch.tensor(owner, device=sim.device)
        per_text = sim.gather(1, own[:, None]).squeeze(1)
        k_max = max(len(c) for c in candidates)
        logits = sim.new_full((len(questions), k_max), float("-inf"))
        for b, cands in enumerate(candidates):
            logits[b, : len(cands)] = self.scale() * per_text[first[b]: first[b] + len(cands)]
        return logits, video, text, first

    def training_losses(self: Any, batch: dict[str, Any], state: TrainState
                        ) -> dict[str, torch.Tensor]:
        logits, video, text, first = self.candidate_scores(batch)
        answers = batch["answers"].to(logits.device)
        if bool((answers < 0).any()):
            raise DataError("mcqa training batch holds a question without an answer")
        out = {"qa": F.cross_entropy(logits, answers)}
        rows = torch.tensor(first, device=logits.device) + answers
        correct = TextRepr(text.sentence[rows], text.tokens[rows], text.mask[rows],
                           text.weights[rows])
        texts = [join_qa(q, c[int(a)]) for q, c, a in
                 zip(batch["questions"], batch["candidates"], answers.tolist())]
        out.update(self.auxiliary_losses(batch, video, correct, texts))
        out["loss"] = sum(out.values(), logits.new_zeros(()))
        return out

    @torch.no_grad()
    def predict(self: Any, batch: dict[str, Any]) -> list[dict[str, Any]]:
        """Per question: candidate scores, the chosen index and the annotated answer."""
        logits, *_ = self.candidate_scores(batch)
        answers = batch.get("answers")
        out = []
        for b, cands in enumerate(batch["candidates"]):
            scores = logits[b, : len(cands)].cpu()
            out.append({"qid": str(batch["qids"][b]), "scores": scores.tolist(),
                        "pred": int(scores.argmax()),
                        "answer": int(answers[b]) if answers is not None else -1})
        return out


@MODELS.register("dual_encoder_mcqa")
class DualEncoderMCQA(MultipleChoiceMixin, DualEncoder):
    """The dual encoder answering multiple-choice questions."""

    task = "mcqa"


@MODELS.register("dmae_mcqa")
class DMAEMCQA(MultipleChoiceMixin, DMAE):
    """DMAE answering multiple-choice questions."""

    task = "mcqa"
