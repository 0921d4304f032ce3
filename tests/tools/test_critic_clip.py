"""ClipCritic: CLIPScore arithmetic, the contrastive accept/reject rule, and a tiny CLIP from disk."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILModule

from lessonforge.tools.base import ConfigError
from lessonforge.tools.critic.clip import DEFAULT_FLOOR, DEFAULT_MARGIN, ClipCritic, clip_score


@pytest.fixture(scope="module")
def tiny_critic(tiny_clip: Path) -> ClipCritic:
    """The ``tiny_clip`` folder (tests/conftest.py, built by tests.tiny_models.build_tiny_clip), loaded."""
    critic = ClipCritic(str(tiny_clip))
    critic.load()
    return critic


def _pictures(n: int) -> list:
    rng = np.random.default_rng(0)
    sizes = [(64, 48), (32, 32), (40, 72), (50, 50)]
    return [
        PILModule.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes[:n]
    ]


class _Scripted(ClipCritic):
    """A critic whose scores are a known matrix, so the decision rule is tested exactly."""

    def __init__(self, matrix: list[list[float]], **options) -> None:
        super().__init__("scripted", **options)
        self.matrix = np.asarray(matrix, dtype=np.float64)

    def scores(self, images, prompts) -> np.ndarray:
        assert self.matrix.shape == (len(images), len(prompts))
        return self.matrix


def _blank(n: int) -> list:
    return [PILModule.new("RGB", (8, 8)) for _ in range(n)]


# --------------------------------------------------------------------------- CLIPScore


def test_clip_score_matches_hand_computed_cosines() -> None:
    images = np.array([[3.0, 4.0], [6.0, 0.0]])
    texts = np.array([[4.0, 3.0], [3.0, 4.0], [-3.0, -4.0], [0.0, 5.0]])
    expected = np.array(
        [
            [2.5 * 24 / 25, 2.5 * 1.0, 0.0, 2.5 * 20 / 25],  # 3-4-5: cos 0.96, 1, -1 -> 0, 0.8
            [2.5 * 4 / 5, 2.5 * 3 / 5, 0.0, 0.0],  # (1, 0) against each: cos 0.8, 0.6, -0.6, 0
        ]
    )
    np.testing.assert_allclose(clip_score(images, texts), expected, rtol=1e-12)


def test_clip_score_accepts_torch_tensors_and_ignores_scale() -> None:
    import torch

    scores = clip_score(torch.tensor([[30.0, 40.0]]), torch.tensor([[0.4, 0.3]], dtype=torch.float16))
    np.testing.assert_allclose(scores, [[2.4]], rtol=1e-3)
    assert clip_score(np.zeros((1, 2)), np.ones((1, 2)))[0, 0] == 0.0


# --------------------------------------------------------------------------- the decision rule


def test_defaults_are_on_the_clipscore_scale() -> None:
    critic = ClipCritic()
    assert (critic.floor, critic.margin) == (DEFAULT_FLOOR, DEFAULT_MARGIN) == (0.65, 0.02)
    assert critic.name == "clip:openai/clip-vit-base-patch32"


def test_judge_accepts_only_frames_that_match_their_own_prompt_best() -> None:
    critic = _Scripted(
        [
            [0.80, 0.70, 0.60],  # clear winner
            [0.71, 0.64, 0.50],  # scene 1's prompt fits better
            [0.60, 0.69, 0.70],  # own prompt wins, but by less than the margin
        ]
    )
    good, stolen, close = critic.judge(_blank(3), ["a", "b", "c"])
    assert good.accepted and good.rank == 1 and good.score == pytest.approx(0.80)
    assert good.scores == pytest.approx((0.80, 0.70, 0.60))
    assert not stolen.accepted and stolen.rank == 2 and stolen.score == pytest.approx(0.64)
    assert "scene 1's prompt better (0.71 vs 0.64)" in stolen.reason
    assert not close.accepted and close.rank == 1
    assert "scene 2" in close.reason and "margin" in close.reason


def test_floor_rejects_a_weak_match_even_when_it_wins() -> None:
    [weak] = _Scripted([[0.60, 0.30]]).judge(_blank(1), ["own", "other"])
    assert not weak.accepted and weak.rank == 1
    assert "floor" in weak.reason and "0.60" in weak.reason


def test_floor_and_margin_are_inclusive_and_tunable() -> None:
    matrix = [[0.5, 0.25], [0.25, 0.5]]
    assert [v.accepted for v in _Scripted(matrix, floor=0.5, margin=0.25).judge(_blank(2), ["a", "b"])] == [
        True,
        True,
    ]
    assert [v.accepted for v in _Scripted(matrix, floor=0.51, margin=0.25).judge(_blank(2), ["a", "b"])] == [
        False,
        False,
    ]
    assert [v.accepted for v in _Scripted(matrix, floor=0.5, margin=0.26).judge(_blank(2), ["a", "b"])] == [
        False,
        False,
    ]


def test_single_prompt_applies_only_the_floor() -> None:
    verdicts = _Scripted([[0.66], [0.64]]).judge(_blank(2), ["the only scene"], targets=[0, 0])
    assert [v.accepted for v in verdicts] == [True, False]
    assert [v.rank for v in verdicts] == [1, 1]
    assert verdicts[0].scores == pytest.approx((0.66,))


def test_targets_pick_each_image_s_own_prompt() -> None:
    critic = _Scripted([[0.70, 0.72, 0.90], [0.90, 0.60, 0.60]])
    regenerated_3, regenerated_1 = critic.judge(_blank(2), ["a", "b", "c"], targets=[2, 0])
    assert regenerated_3.accepted and regenerated_3.score == pytest.approx(0.90)
    assert regenerated_1.accepted and regenerated_1.score == pytest.approx(0.90)
    [mistargeted] = _Scripted([[0.70, 0.72, 0.90]]).judge(_blank(1), ["a", "b", "c"], targets=[0])
    assert not mistargeted.accepted and mistargeted.rank == 3
    assert "scene 3's prompt better (0.90 vs 0.70)" in mistargeted.reason


def test_judge_rejects_inconsistent_arguments() -> None:
    critic = _Scripted([[0.7, 0.6]])
    with pytest.raises(ConfigError, match="target"):
        critic.judge(_blank(1), ["a", "b"], targets=[2])
    with pytest.raises(ConfigError, match="one target"):
        critic.judge(_blank(1), ["a", "b"], targets=[0, 1])
    with pytest.raises(ConfigError, match="floor"):
        ClipCritic(floor=3.0)
    with pytest.raises(ConfigError, match="margin"):
        ClipCritic(margin=-0.1)
    assert critic.judge([], ["a"]) == []


# --------------------------------------------------------------------------- with a tiny CLIP


def test_tiny_clip_scores_every_pair_in_one_forward_pass(tiny_critic: ClipCritic) -> None:
    calls = []
    handle = tiny_critic._clip.register_forward_hook(lambda *args: calls.append(1))
    try:
        matrix = tiny_critic.scores(_pictures(3), ["a cell dividing", "a volcano", "a fraction bar"])
    finally:
        handle.remove()
    assert len(calls) == 1
    assert matrix.shape == (3, 3)
    assert np.isfinite(matrix).all() and (matrix >= 0).all() and (matrix <= 2.5).all()
    again = tiny_critic.scores(_pictures(3), ["a cell dividing", "a volcano", "a fraction bar"])
    np.testing.assert_allclose(matrix, again, atol=1e-6)


def test_tiny_clip_judge_returns_one_consistent_verdict_per_image(tiny_critic: ClipCritic) -> None:
    prompts = ["a cell dividing", "a volcano erupting", "a fraction bar"]
    images = _pictures(2) + [_pictures(1)[0].convert("L")]  # grayscale is converted, not refused
    verdicts = tiny_critic.judge(images, prompts)
    matrix = tiny_critic.scores(images, prompts)
    assert len(verdicts) == 3
    for i, verdict in enumerate(verdicts):
        assert len(verdict.scores) == 3
        assert verdict.score == pytest.approx(matrix[i, i], abs=1e-6)
        assert verdict.rank == 1 + sum(matrix[i, j] > matrix[i, i] for j in range(3) if j != i)
        own, rivals = matrix[i, i], np.delete(matrix[i], i)
        expected = own >= tiny_critic.floor and own - rivals.max() >= tiny_critic.margin
        assert verdict.accepted == bool(expected)
        assert verdict.reason


def test_long_prompts_are_truncated_to_77_tokens(tiny_critic: ClipCritic) -> None:
    assert tiny_critic.max_tokens == 77
    head = " ".join(["photosynthesis"] * 40)
    prompts = [head + " in a green leaf", head + " under a red sky at night"]
    matrix = tiny_critic.scores(_pictures(1), prompts)
    assert matrix.shape == (1, 2)
    assert matrix[0, 0] == pytest.approx(matrix[0, 1], abs=1e-6)  # they differ only past token 77


def test_missing_model_offline_fails_at_once_naming_the_model() -> None:
    critic = ClipCritic("lessonforge-test/no-such-clip")
    start = time.monotonic()
    with pytest.raises(ConfigError) as err:
        critic.judge(_blank(1), ["a cat"])
    assert time.monotonic() - start < 10
    assert "lessonforge-test/no-such-clip" in str(err.value)
    assert "--critic none" in str(err.value)
