from __future__ import annotations

import asyncio

from PIL import Image

from lessonforge.tools.batching import BatchedCritic
from lessonforge.tools.cache import AssetStore
from lessonforge.tools.fakes import FakeCritic


def _pic(prompt: str) -> Image.Image:
    img = Image.new("RGB", (8, 8), (len(prompt) * 7 % 255, 10, 10))
    img.info["prompt"] = prompt
    return img


PROMPTS = ["a red apple on a table", "a blue whale in the sea", "a green leaf in the sun"]


def test_concurrent_requests_share_one_pass(tmp_path):
    critic = FakeCritic()
    batched = BatchedCritic(critic, AssetStore(tmp_path))

    async def go():
        return await asyncio.gather(*(batched.judge_one(_pic(p), PROMPTS, i) for i, p in enumerate(PROMPTS)))

    verdicts = asyncio.run(go())
    assert [v.accepted for v in verdicts] == [True, True, True]
    assert critic.score_calls == 1 and batched.passes == 1 and batched.judged == 3


def test_cached_verdicts_follow_the_new_scene_order(tmp_path):
    store = AssetStore(tmp_path)
    first = BatchedCritic(FakeCritic(), store)
    pic = _pic("unrelated noise")  # matches nothing: rejected, with its scores per prompt
    before = asyncio.run(first.judge_one(pic, PROMPTS, 1))
    moved = [PROMPTS[2], PROMPTS[1], PROMPTS[0]]
    again = BatchedCritic(FakeCritic(), store)
    after = asyncio.run(again.judge_one(pic, moved, 1))
    assert again.hits == 1 and again.judged == 0  # from the cache
    assert after.scores == (before.scores[2], before.scores[1], before.scores[0])
    assert after.accepted == before.accepted and after.score == before.score


def test_a_failing_pass_reaches_every_waiting_scene(tmp_path):
    class Broken(FakeCritic):
        def scores(self, images, prompts):
            raise RuntimeError("boom")

    batched = BatchedCritic(Broken(), None)

    async def go():
        return await asyncio.gather(*(batched.judge_one(_pic(p), PROMPTS, i) for i, p in enumerate(PROMPTS)),
                                    return_exceptions=True)

    assert all(isinstance(r, RuntimeError) for r in asyncio.run(go()))
