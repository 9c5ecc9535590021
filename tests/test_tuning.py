"""The on-disk tuning cache: a second run reuses every tuned choice, files from another machine
or damaged files are ignored, concurrent writers lose nothing, and a cache that cannot be
written never stops stylizing; choose_fastest times, checks parity and caches."""

from __future__ import annotations

import json
import multiprocessing as mp
import warnings

import pytest
import torch

from reconet.inference.accelerate import TunedConv2d, accelerate
from reconet.models import build_reconet
from reconet.tuning import TuningCache, choose_fastest, gradient_parity, machine_fingerprint


@pytest.fixture(scope="module")
def tiny() -> torch.nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return build_reconet("tiny").eval()


def tuned_convs(module: torch.nn.Module) -> list[TunedConv2d]:
    return [m for m in module.modules() if isinstance(m, TunedConv2d)]


def timed(module: torch.nn.Module) -> int:
    """Layer-shapes timed in this run (layers of the same signature and input share one)."""
    return sum(conv.tuned for conv in tuned_convs(module))


def run(module: torch.nn.Module, cache: TuningCache | None, frame: torch.Tensor):
    fast = accelerate(module, cache=cache)
    with torch.inference_mode():
        output = fast(frame).output
    return fast, output


def test_a_second_run_reuses_every_choice_and_gives_the_same_output(tmp_path, tiny):
    frame = torch.rand(1, 3, 40, 56)
    path = tmp_path / "kernels.json"
    first, out1 = run(tiny, TuningCache(path), frame)
    convs = tuned_convs(first)
    stored = json.loads(path.read_text())
    assert len(convs) > len(stored["choices"]) == timed(first) > 0
    assert stored["machine"] == machine_fingerprint()
    # One entry per distinct (layer, input shape): the residual blocks share theirs.
    keys = {conv.cache_key(torch.empty(0)).split("|")[0] for conv in convs}
    assert {key.split("|")[0] for key in stored["choices"]} == keys
    assert set(stored["choices"].values()) <= {"nchw", "channels_last", "nnpack"}

    second, out2 = run(tiny, TuningCache(path), frame)
    assert timed(second) == 0
    assert [c.choices for c in tuned_convs(second)] == [c.choices for c in convs]
    torch.testing.assert_close(out2, out1, rtol=0, atol=0)

    # Another input size is another key: tuned once, added to the file.
    third, _ = run(tiny, TuningCache(path), torch.rand(1, 3, 48, 48))
    assert timed(third) == len(stored["choices"])
    assert len(json.loads(path.read_text())["choices"]) == 2 * len(stored["choices"])


def test_keys_name_the_layer_the_input_shape_and_the_dtype():
    conv = TunedConv2d(torch.nn.Conv2d(3, 32, 9, stride=1, padding=4))
    key = conv.cache_key(torch.empty(1, 3, 480, 856))
    assert key == "conv3-32-k9x9-s1x1-p4x4-d1x1-g1-b1|1x3x480x856|float32"
    assert conv.cache_key(torch.empty(2, 3, 480, 856)) != key
    assert conv.cache_key(torch.empty(1, 3, 480, 856, dtype=torch.bfloat16)).endswith("|bfloat16")
    strided = TunedConv2d(torch.nn.Conv2d(3, 32, 9, stride=2, padding=4, bias=False))
    assert strided.cache_key(torch.empty(1, 3, 480, 856)).startswith("conv3-32-k9x9-s2x2-p4x4-d1x1-g1-b0|")


def test_a_file_from_another_machine_is_ignored_and_replaced(tmp_path, tiny):
    frame = torch.rand(1, 3, 40, 56)
    path = tmp_path / "kernels.json"
    other, _ = run(tiny, TuningCache(path, fingerprint={"cpu": "another CPU"}), frame)
    fast, _ = run(tiny, TuningCache(path), frame)
    assert timed(fast) == timed(other) > 0
    assert json.loads(path.read_text())["machine"] == machine_fingerprint()


@pytest.mark.parametrize("content", ["{not json", '{"format": 1, "machine": null}', "[]", ""])
def test_a_damaged_file_counts_as_empty_and_is_rewritten(tmp_path, tiny, content):
    path = tmp_path / "kernels.json"
    path.write_text(content)
    fast, _ = run(tiny, TuningCache(path), torch.rand(1, 3, 40, 56))
    assert timed(fast) == len(json.loads(path.read_text())["choices"]) > 0


def test_a_cached_choice_that_does_not_apply_is_tuned_again(tmp_path, tiny):
    frame = torch.rand(1, 3, 40, 56)
    path = tmp_path / "kernels.json"
    run(tiny, TuningCache(path), frame)
    stored = json.loads(path.read_text())
    # NNPACK does stride-1 only; "winograd9" is no kernel at all.
    strided = next(key for key in stored["choices"] if "-s2x2-" in key)
    stored["choices"] = {key: ("nnpack" if key == strided else "winograd9") for key in stored["choices"]}
    path.write_text(json.dumps(stored))
    fast, _ = run(tiny, TuningCache(path), frame)
    assert timed(fast) == len(stored["choices"])
    assert set(json.loads(path.read_text())["choices"].values()) <= {"nchw", "channels_last", "nnpack"}


def _writer(path: str, prefix: str, count: int) -> None:
    cache = TuningCache(path, fingerprint={"cpu": "test"})
    for index in range(count):
        cache.put(f"{prefix}{index}", "nchw")


def test_concurrent_writers_lose_no_entry(tmp_path):
    path = tmp_path / "kernels.json"
    context = mp.get_context("spawn")
    writers = [context.Process(target=_writer, args=(str(path), prefix, 40)) for prefix in ("a", "b", "c")]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
    assert [writer.exitcode for writer in writers] == [0, 0, 0]
    choices = json.loads(path.read_text())["choices"]
    assert set(choices) == {f"{prefix}{i}" for prefix in "abc" for i in range(40)}
    assert not [p.name for p in tmp_path.iterdir() if p.name not in ("kernels.json", "kernels.json.lock")]


def test_an_unwritable_cache_warns_once_and_stylizing_goes_on(tmp_path, tiny):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    cache = TuningCache(blocker / "kernels.json")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fast, output = run(tiny, cache, torch.rand(1, 3, 40, 56))
    messages = [str(w.message) for w in caught if "tuning cache" in str(w.message)]
    assert len(messages) == 1 and "not written" in messages[0], messages
    assert output.shape == (1, 3, 40, 56) and torch.isfinite(output).all()


def test_the_default_cache_lives_in_the_cache_dir_and_can_be_switched_off(tmp_path, monkeypatch):
    monkeypatch.setenv("RECONET_CACHE_DIR", str(tmp_path))
    cache = TuningCache.default()
    assert cache is not None and cache.path.parent == tmp_path and cache.path.name.startswith("tuning-")
    monkeypatch.setenv("RECONET_KERNEL_CACHE", "off")  # the older name still works
    assert TuningCache.default() is None
    monkeypatch.delenv("RECONET_KERNEL_CACHE")
    monkeypatch.setenv("RECONET_TUNING_CACHE", "off")
    assert TuningCache.default() is None


def test_without_tuning_only_cached_choices_are_used_and_nothing_is_timed(tmp_path, tiny):
    frame = torch.rand(1, 3, 40, 56)
    path = tmp_path / "kernels.json"
    empty = accelerate(tiny, cache=TuningCache(path), tune=False)
    with torch.inference_mode():
        empty(frame)
    assert timed(empty) == 0 and not path.exists()  # unknown shapes: the reference kernel
    assert {choice for conv in tuned_convs(empty) for choice in conv.choices.values()} == {"nchw"}
    tuned, _ = run(tiny, TuningCache(path), frame)
    cached = accelerate(tiny, cache=TuningCache(path), tune=False)
    with torch.inference_mode():
        cached(frame)
    assert timed(cached) == 0
    assert [c.choices for c in tuned_convs(cached)] == [c.choices for c in tuned_convs(tuned)]


# -- choose_fastest ------------------------------------------------------------------------------


class Work:
    """A candidate that sleeps ``seconds`` and returns ``value``; counts its calls."""

    def __init__(self, seconds: float, value: float) -> None:
        self.seconds, self.value, self.calls = seconds, value, 0

    def __call__(self) -> float:
        import time

        self.calls += 1
        time.sleep(self.seconds)
        return self.value


def within(tolerance: float):
    return lambda expected, got: (abs(got - expected), abs(got - expected) <= tolerance)


def test_the_fastest_candidate_that_meets_the_bar_wins_and_is_cached(tmp_path):
    cache = TuningCache(tmp_path / "tuning.json", fingerprint={"cpu": "test"})
    slow, fast, wrong = Work(0.03, 1.0), Work(0.001, 1.001), Work(0.0, 5.0)
    candidates = {"slow": slow, "fast": fast, "wrong": wrong}
    choice = choose_fastest(candidates, reference="slow", parity=within(0.01), key="k", cache=cache, rounds=2)
    assert choice.name == "fast" and choice.how == "measured"
    assert not choice.measurements["wrong"].passed and wrong.calls == 1  # run for parity, never timed
    assert choice.measurements["fast"].seconds < choice.measurements["slow"].seconds
    assert slow.calls == fast.calls == 3  # one warm-up + two timed rounds
    again = choose_fastest(candidates, reference="slow", parity=within(0.01), key="k", cache=TuningCache(cache.path, {"cpu": "test"}))
    assert again.name == "fast" and again.how == "cached" and slow.calls == fast.calls == 3  # nothing ran


def test_the_reference_wins_when_the_others_fail_parity_or_are_slower(tmp_path):
    candidates = {"fp32": Work(0.0, 1.0), "bf16": Work(0.02, 1.0)}
    assert choose_fastest(candidates, reference="fp32", parity=within(0.1), key="a", cache=None).name == "fp32"
    candidates = {"fp32": Work(0.02, 1.0), "bf16": Work(0.0, 2.0)}
    assert choose_fastest(candidates, reference="fp32", parity=within(0.1), key="b", cache=None).name == "fp32"


def test_without_measuring_only_a_cached_choice_or_the_reference_is_used(tmp_path):
    cache = TuningCache(tmp_path / "tuning.json", fingerprint={"cpu": "test"})
    fp32, bf16 = Work(0.0, 1.0), Work(0.0, 1.0)
    choice = choose_fastest({"fp32": fp32, "bf16": bf16}, reference="fp32", parity=within(1), key="k", cache=cache, measure=False)
    assert (choice.name, choice.how, fp32.calls, bf16.calls) == ("fp32", "not measured", 0, 0)
    cache.put("k", "bf16")
    assert choose_fastest({"fp32": fp32, "bf16": bf16}, reference="fp32", parity=within(1), key="k", cache=cache, measure=False).name == "bf16"
    cache.put("k", "int8")  # a cached name that is no longer a candidate is not used
    choice = choose_fastest({"fp32": fp32, "bf16": bf16}, reference="fp32", parity=within(1), key="k", cache=cache, measure=False)
    assert choice.name == "fp32"
    with pytest.raises(ValueError, match="reference"):
        choose_fastest({"fp32": fp32}, reference="fp64", parity=within(1), key="k", cache=None)


def test_gradient_parity_needs_the_loss_within_2_percent_and_the_gradient_aligned():
    grad = torch.tensor([1.0, 2.0, 3.0])
    assert gradient_parity((torch.tensor(10.0), grad), (torch.tensor(10.15), grad * 1.1))[1]
    assert not gradient_parity((torch.tensor(10.0), grad), (torch.tensor(10.3), grad))[1]  # loss 3 % off
    cosine, passed = gradient_parity((torch.tensor(10.0), grad), (torch.tensor(10.0), torch.tensor([3.0, 2.0, 1.0])))
    assert cosine == pytest.approx(10 / 14) and not passed
    assert not gradient_parity((torch.tensor(10.0), grad), (torch.tensor(float("nan")), grad))[1]
