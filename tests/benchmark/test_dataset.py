"""Accuracy on a labelled image folder (ImageFolder layout) in bench rows."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from vit5_infer.benchmark.dataset import LabelledImages, dataset_accuracy
from vit5_infer.preprocessing import Preprocessing

DIGITS_PRE = Preprocessing(image_size=32, mean=(0.5,) * 3, std=(0.25,) * 3)


@pytest.fixture
def small_digits(digits_dir, tmp_path):
    """Three images each of digits 3, 7 and 8 (classes 0, 1, 2 in sorted folder order)."""
    for digit in ("3", "7", "8"):
        (tmp_path / digit).mkdir()
        for image in sorted((digits_dir / "test" / digit).glob("*.png"))[:3]:
            shutil.copy(image, tmp_path / digit / image.name)
    return tmp_path


def test_labelled_folder_is_found_in_sorted_class_order(small_digits):
    data = LabelledImages.find(small_digits)
    assert data.classes == ("3", "7", "8")
    assert data.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_not_a_labelled_folder(small_digits, tmp_path_factory):
    flat = tmp_path_factory.mktemp("flat")
    shutil.copy(next((small_digits / "3").glob("*.png")), flat / "a.png")
    assert LabelledImages.find(flat) is None  # images but no class folders
    shutil.copytree(small_digits / "3", flat / "3")
    assert LabelledImages.find(flat) is None  # loose images beside class folders


def test_accuracy_counts_top1_and_top5_and_pads_the_last_batch(small_digits):
    data = LabelledImages.find(small_digits)
    seen = []

    def oracle(x):
        # Class index from the batch position: right for the first four images, then always wrong.
        seen.append(x.shape[0])
        n = len(seen) * 4 - 4
        logits = np.zeros((x.shape[0], 10))
        for i in range(x.shape[0]):
            label = data.labels[min(n + i, len(data.labels) - 1)]
            logits[i, label if n + i < 4 else (label + 1) % 10] = 1.0
            logits[i, label] += 0.5  # always in the top 5
        return {"logits": logits}

    result = dataset_accuracy(oracle, data, DIGITS_PRE, batch=4)
    assert seen == [4, 4, 4]  # 9 images: the last batch is padded to 4
    assert result == {"images": 9, "top1": 4 / 9, "top5": 1.0}


def test_bench_rows_carry_dataset_accuracy(digits_dir, tmp_path):
    from vit5_infer.benchmark import BenchSettings, TimingPlan, run_benchmark

    for digit in range(10):  # the first test image of every digit: class index = digit
        (tmp_path / str(digit)).mkdir()
        first = sorted((digits_dir / "test" / str(digit)).glob("*.png"))[0]
        shutil.copy(first, tmp_path / str(digit) / first.name)
    settings = BenchSettings(backends=["torch", "ort"], batches=[4], images=tmp_path,
                             timing=TimingPlan(warmup=0, iters=1),
                             preprocessing={"mean": (0.5,) * 3, "std": (0.25,) * 3})
    report = run_benchmark(digits_dir / "digits_attn.safetensors", settings)
    assert [r.backend for r in report.results] == ["torch", "ort"]
    for row in report.results:
        # the trained network gets 99.5% of the whole test folder, these ten included
        assert row.dataset == {"images": 10, "top1": 1.0, "top5": 1.0}
    assert report.to_dict()["results"][1]["dataset"]["top1"] == 1.0
