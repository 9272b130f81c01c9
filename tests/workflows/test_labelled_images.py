"""Accuracy on a labelled image folder (ImageFolder layout) in bench rows."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from vit5_infer.errors import BenchError
from vit5_infer.preprocessing import Preprocessing
from vit5_infer.workflows.labelled_images import LabelledImages, dataset_accuracy, read_class_index

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
    from vit5_infer.workflows.benchmark import BenchSettings, TimingPlan, run_benchmark

    for digit in range(10):  # the first test image of every digit: class index = digit
        (tmp_path / str(digit)).mkdir()
        first = sorted((digits_dir / "test" / str(digit)).glob("*.png"))[0]
        shutil.copy(first, tmp_path / str(digit) / first.name)
    settings = BenchSettings(
        backends=["torch", "ort"],
        batches=[4],
        images=tmp_path,
        timing=TimingPlan(warmup=0, iters=1),
        preprocessing={"mean": (0.5,) * 3, "std": (0.25,) * 3},
    )
    report = run_benchmark(digits_dir / "digits_attn.safetensors", settings)
    assert [r.backend for r in report.results] == ["torch", "ort"]
    for row in report.results:
        # the trained network gets 99.5% of the whole test folder, these ten included
        assert row.dataset == {"images": 10, "top1": 1.0, "top5": 1.0}
    assert report.to_dict()["results"][1]["dataset"]["top1"] == 1.0


# ---- --labels: the class index of each folder from a file ------------------------------------------
def test_text_labels_file_orders_the_classes(small_digits, tmp_path_factory):
    labels = tmp_path_factory.mktemp("labels") / "classes.txt"
    labels.write_text("8 eight\n\n7 seven\n3\n")  # blank lines skipped; words after the name ignored
    index = read_class_index(labels)
    assert index == {"8": 0, "7": 1, "3": 2}
    data = LabelledImages.find(small_digits, index)
    assert data.classes == ("3", "7", "8") and data.class_ids == (2, 1, 0)
    assert data.labels.tolist() == [2, 2, 2, 1, 1, 1, 0, 0, 0]


def test_json_labels_file_as_list_or_mapping(small_digits, tmp_path_factory):
    folder = tmp_path_factory.mktemp("labels")
    (folder / "list.json").write_text('["7", "3", "8"]')
    (folder / "map.json").write_text('{"3": 3, "7": 7, "8": 8, "9": 9}')  # classes without a folder are fine
    assert read_class_index(folder / "list.json") == {"7": 0, "3": 1, "8": 2}
    data = LabelledImages.find(small_digits, read_class_index(folder / "map.json"))
    assert data.labels.tolist() == [3, 3, 3, 7, 7, 7, 8, 8, 8]


def test_one_class_folder_is_a_dataset_with_a_labels_file(small_digits, tmp_path_factory):
    one = tmp_path_factory.mktemp("one")
    shutil.copytree(small_digits / "7", one / "7")
    assert LabelledImages.find(one) is None  # one class folder alone looks like any image folder
    assert LabelledImages.find(one, {"7": 7}).labels.tolist() == [7, 7, 7]


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("missing.txt", None, "labels file not found"),
        ("labels.csv", "3\n", "expected an labels file"),
        ("bad.json", "[1, 2", "not valid JSON"),
        ("numbers.json", "[3, 7]", "expected a JSON list of class folder names"),
        ("bools.json", '{"3": true}', "expected a JSON list of class folder names"),
        ("empty.txt", "\n \n", "names no class"),
        ("twice.txt", "3\n7\n3\n", "class '3' is listed twice"),
        ("negative.json", '{"3": -1}', "index -1, outside 0.."),
        ("past_int64.json", '{"3": 9223372036854775808}', "index 9223372036854775808, outside 0.."),
        ("huge.json", '{"3": 1' + "0" * 5000 + "}", "not valid JSON"),
        ("nested.json", "[" * 100_000 + "]" * 100_000, "nested deeper than"),
        ("duplicate.json", '{"3": 0, "7": 1, "3": 2}', "duplicate key '3'"),
        ("nan.json", '{"3": NaN}', "NaN is not a JSON number"),
        ("latin1.json", b'["\xe9"]', "not UTF-8"),
    ],
)
def test_bad_labels_file_is_one_line_error(tmp_path, name, text, message):
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text)
    with pytest.raises(BenchError, match=message.replace("[", r"\[")) as info:
        read_class_index(path)
    assert "\n" not in str(info.value)


def test_class_folder_missing_from_labels_or_beyond_the_network(small_digits, tmp_path_factory):
    with pytest.raises(BenchError, match="class folder '8' is not in the labels file"):
        LabelledImages.find(small_digits, {"3": 0, "7": 1})
    data = LabelledImages.find(small_digits, {"3": 0, "7": 1, "8": 10})
    data.check_classes(11)
    with pytest.raises(BenchError, match="class folder '8' has class index 10, but the network has 10 classes"):
        data.check_classes(10)
    flat = tmp_path_factory.mktemp("flat")
    shutil.copy(next((small_digits / "3").glob("*.png")), flat / "a.png")
    with pytest.raises(BenchError, match="images outside class folders"):
        LabelledImages.find(flat, {"3": 0})


def test_labels_need_images():
    from vit5_infer.workflows.benchmark import BenchSettings

    with pytest.raises(BenchError, match="give --images DIR too"):
        BenchSettings(labels="classes.txt").check()


def test_bench_uses_the_labels_file(digits_dir, tmp_path):
    """Folders named by word sort in another order than the digits: only the labels file makes the
    trained network's answers right."""
    from vit5_infer.workflows.benchmark import BenchSettings, TimingPlan, run_benchmark

    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    images = tmp_path / "images"
    for digit, word in enumerate(words):
        (images / word).mkdir(parents=True)
        first = sorted((digits_dir / "test" / str(digit)).glob("*.png"))[0]
        shutil.copy(first, images / word / first.name)
    (tmp_path / "classes.txt").write_text("\n".join(words) + "\n")
    common = dict(
        backends=["ort"],
        batches=[4],
        images=images,
        timing=TimingPlan(warmup=0, iters=1),
        preprocessing={"mean": (0.5,) * 3, "std": (0.25,) * 3},
    )
    sorted_order = run_benchmark(digits_dir / "digits_attn.safetensors", BenchSettings(**common))
    with_labels = run_benchmark(
        digits_dir / "digits_attn.safetensors", BenchSettings(**common, labels=tmp_path / "classes.txt")
    )
    assert sorted_order.results[0].dataset["top1"] < 0.5
    assert with_labels.results[0].dataset == {"images": 10, "top1": 1.0, "top5": 1.0}
    assert with_labels.to_dict()["settings"]["labels"] == str(tmp_path / "classes.txt")


@pytest.mark.parametrize(
    "name, text",
    [
        ("bom.txt", "\ufeff3\n7\n"),
        ("bom.json", '\ufeff["3", "7"]'),
        ("bom_object.json", '\ufeff{"3": 0, "7": 1}'),
    ],
)
def test_a_byte_order_mark_is_not_part_of_the_first_class(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    assert read_class_index(path) == {"3": 0, "7": 1}
