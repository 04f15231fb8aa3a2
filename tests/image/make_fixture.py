# mypy: disable-error-code="import-not-found,import-untyped"
# (numpy and scikit-learn are in the model's environment only.)
"""Writes digits_fixture.json: one held-out image per class from scikit-learn's bundled digits.

Run with the model's environment (it has scikit-learn): model/.venv/bin/python
tests/image/make_fixture.py. The split matches model/training/train.py (stratified, 25 %,
random_state=0), so none of these images was seen in training.
"""

import json
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

FIXTURE = Path(__file__).with_name("digits_fixture.json")


def main() -> None:
    digits = load_digits()
    indices = np.arange(len(digits.target))
    _, test_indices = train_test_split(
        indices, test_size=0.25, stratify=digits.target, random_state=0
    )
    chosen = []
    for label in range(10):
        index = next(int(i) for i in test_indices if digits.target[i] == label)
        chosen.append(index)
    fixture = {
        "source": "sklearn.datasets.load_digits() held-out split; images are raw 0..16 values",
        "dataset_indices": chosen,
        "labels": [int(digits.target[i]) for i in chosen],
        "instances": [digits.images[i].astype(int).tolist() for i in chosen],
    }
    FIXTURE.write_text(json.dumps(fixture, separators=(",", ":")) + "\n")
    print(f"wrote {FIXTURE}: labels {fixture['labels']}")


if __name__ == "__main__":
    main()
