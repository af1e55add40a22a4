"""training.readers on files the tests write (IDX, SVHN .mat in both MATLAB formats, COCO),
plus the real files in ../shared/data when they are there."""

from __future__ import annotations

import gzip
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from training.readers import (
    DataFormatError,
    default_data_dir,
    load_idx_pair,
    load_mnist,
    load_orand_car_a,
    load_svhn_cropped,
    read_idx,
    read_mat5,
    read_svhn_digit_struct,
    split_holdout,
)

DATA = default_data_dir()

# ------------------------------------------------------------------------------------- IDX


def write_idx(path: Path, array: np.ndarray, *, compress: bool = False) -> Path:
    type_codes = {np.dtype("uint8"): 0x08, np.dtype("int32"): 0x0C, np.dtype("float32"): 0x0D}
    header = struct.pack(">HBB", 0, type_codes[array.dtype], array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)
    return path


@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip_plain_and_gzip(tmp_path, compress):
    images = np.random.default_rng(0).integers(0, 256, (7, 5, 4), dtype=np.uint8)
    path = write_idx(tmp_path / "images.idx", images, compress=compress)
    assert np.array_equal(read_idx(path), images)


def test_idx_big_endian_ints_and_floats(tmp_path):
    ints = np.array([[1, -2, 70000]], np.int32)
    floats = np.array([0.5, -1.25, 3e6], np.float32)
    assert np.array_equal(read_idx(write_idx(tmp_path / "i", ints)), ints)
    assert np.array_equal(read_idx(write_idx(tmp_path / "f", floats)), floats)


def test_idx_transposed_flag_fixes_emnist_orientation(tmp_path):
    upright = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    stored = np.ascontiguousarray(np.swapaxes(upright, 1, 2))  # EMNIST stores columns first
    path = write_idx(tmp_path / "emnist.idx", stored)
    assert np.array_equal(read_idx(path, transposed=True), upright)
    assert read_idx(path).shape == (2, 4, 3)


def test_idx_bad_magic_truncation_and_count_mismatch(tmp_path):
    good = write_idx(tmp_path / "good", np.zeros((4, 2, 2), np.uint8)).read_bytes()
    (tmp_path / "magic").write_bytes(b"\x01\x00" + good[2:])
    with pytest.raises(DataFormatError, match="magic"):
        read_idx(tmp_path / "magic")
    (tmp_path / "short").write_bytes(good[:-3])
    with pytest.raises(DataFormatError, match="header says"):
        read_idx(tmp_path / "short")
    (tmp_path / "tiny").write_bytes(b"\x00")
    with pytest.raises(DataFormatError, match="too short"):
        read_idx(tmp_path / "tiny")
    (tmp_path / "badgz").write_bytes(b"\x1f\x8b" + b"garbage")
    with pytest.raises(DataFormatError, match="gzip"):
        read_idx(tmp_path / "badgz")
    with pytest.raises(DataFormatError, match="no such file"):
        read_idx(tmp_path / "missing")


def test_idx_pair_counts_must_agree(tmp_path):
    images = write_idx(tmp_path / "x", np.zeros((5, 3, 3), np.uint8))
    labels = write_idx(tmp_path / "y", np.zeros(4, np.uint8))
    with pytest.raises(DataFormatError, match="5 images but"):
        load_idx_pair(images, labels)
    labels = write_idx(tmp_path / "y", np.arange(5, dtype=np.uint8))
    x, y = load_idx_pair(images, labels)
    assert x.shape == (5, 3, 3) and y.tolist() == [0, 1, 2, 3, 4]


def test_real_mnist_when_present():
    if not (DATA / "mnist").is_dir():
        pytest.skip(f"no MNIST under {DATA}")
    images, labels = load_mnist("t10k")
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist()[:3] == [980, 1135, 1032]  # the published class counts
    with pytest.raises(ValueError, match="unknown MNIST split"):
        load_mnist("test")


# ------------------------------------------------------------------------------------ SVHN


def write_digit_struct(path: Path, entries: list[tuple[str, list[tuple[int, int, int, int, int]]]]):
    """A MATLAB v7.3 digitStruct.mat as MATLAB writes it: references everywhere."""
    import h5py

    with h5py.File(path, "w") as h5file:
        refs = h5file.create_group("#refs#")
        group = h5file.create_group("digitStruct")
        ref_dtype = h5py.special_dtype(ref=h5py.Reference)
        names = np.empty((len(entries), 1), dtype=ref_dtype)
        bboxes = np.empty((len(entries), 1), dtype=ref_dtype)
        for index, (name, digits) in enumerate(entries):
            chars = refs.create_dataset(f"n{index}", data=np.array([[ord(c)] for c in name], "u2"))
            names[index, 0] = chars.ref
            bbox = refs.create_group(f"b{index}")
            for column, key in enumerate(("label", "left", "top", "width", "height")):
                values = [float(d[column]) for d in digits]
                if len(values) == 1:  # one digit: stored inline
                    bbox.create_dataset(key, data=np.array([[values[0]]]))
                else:  # several: a column of references to scalars
                    column_refs = np.empty((len(values), 1), dtype=ref_dtype)
                    for row, value in enumerate(values):
                        scalar = refs.create_dataset(f"s{index}{key}{row}", data=[[value]])
                        column_refs[row, 0] = scalar.ref
                    bbox.create_dataset(key, data=column_refs)
            bboxes[index, 0] = bbox.ref
        group.create_dataset("name", data=names)
        group.create_dataset("bbox", data=bboxes)


def test_svhn_digit_struct_generated(tmp_path):
    path = tmp_path / "digitStruct.mat"
    write_digit_struct(
        path,
        [("1.png", [(1, 10, 5, 8, 20), (10, 19, 6, 9, 21)]), ("2.png", [(7, 3, 4, 5, 6)])],
    )
    entries = read_svhn_digit_struct(path)
    assert [e.name for e in entries] == ["1.png", "2.png"]
    assert [e.text for e in entries] == ["10", "7"]  # label 10 is the digit 0
    assert entries[0].digits[1].left == 19 and entries[0].digits[1].height == 21
    assert entries[1].digits[0].width == 5


def test_svhn_digit_struct_errors(tmp_path):
    (tmp_path / "not.mat").write_bytes(b"MATLAB 5.0 MAT-file" + bytes(200))
    with pytest.raises(DataFormatError, match="HDF5"):
        read_svhn_digit_struct(tmp_path / "not.mat")
    import h5py

    with h5py.File(tmp_path / "empty.mat", "w") as h5file:
        h5file.create_group("other")
    with pytest.raises(DataFormatError, match="digitStruct"):
        read_svhn_digit_struct(tmp_path / "empty.mat")


@pytest.mark.parametrize("split", ["train", "test", "extra"])
def test_svhn_real_format1_samples(split):
    folder = DATA / "svhn" / "format1-samples" / split
    if not (folder / "digitStruct.mat").is_file():
        pytest.skip(f"no SVHN samples under {folder}")
    entries = read_svhn_digit_struct(folder / "digitStruct.mat")
    assert len(entries) >= 3
    assert entries[0].name == "1.png"
    for entry in entries:
        assert 1 <= len(entry.digits) <= 6
        assert all(0 <= d.label <= 9 and d.width > 0 and d.height > 0 for d in entry.digits)
    if split == "train":  # the well-known first SVHN training images
        assert [e.text for e in entries[:3]] == ["19", "23", "25"]
    if split == "test":  # agrees with the JSON conversion of the same annotation
        reference = json.loads((DATA / "svhn" / "test_digitStruct.json").read_text())
        first = reference[0] if isinstance(reference, list) else None
        if first and "boxes" in first:
            labels = "".join(str(int(b["label"]) % 10) for b in first["boxes"])
            assert entries[0].text == labels


def _mat5_element(data_type: int, payload: bytes) -> bytes:
    padding = -len(payload) % 8
    return struct.pack("<II", data_type, len(payload)) + payload + bytes(padding)


def _mat5_matrix(name: str, array: np.ndarray, class_id: int, data_type: int) -> bytes:
    body = _mat5_element(6, struct.pack("<II", class_id, 0))  # array flags
    body += _mat5_element(5, np.array(array.shape, "<i4").tobytes())
    body += _mat5_element(1, name.encode())
    body += _mat5_element(data_type, array.ravel(order="F").tobytes())
    return _mat5_element(14, body)


def write_mat5(path: Path, variables: dict[str, np.ndarray], *, compress: bool) -> None:
    header = b"MATLAB 5.0 MAT-file, written by ocrd tests".ljust(116) + bytes(8)
    header += struct.pack("<H", 0x0100) + b"IM"
    body = b""
    for name, array in variables.items():
        class_id, data_type = (9, 2) if array.dtype == np.uint8 else (6, 9)  # uint8 / double
        element = _mat5_matrix(name, array, class_id, data_type)
        if compress:
            packed = zlib.compress(element)
            element = struct.pack("<II", 15, len(packed)) + packed
        body += element
    path.write_bytes(header + body)


@pytest.mark.parametrize("compress", [False, True])
def test_svhn_cropped_mat5(tmp_path, compress):
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (32, 32, 3, 4), dtype=np.uint8)  # MATLAB's X layout
    labels = np.array([[10], [1], [9], [5]], np.float64)
    path = tmp_path / "test_32x32.mat"
    write_mat5(path, {"X": images, "y": labels}, compress=compress)
    x, y = load_svhn_cropped(path)
    assert x.shape == (4, 32, 32, 3)
    assert np.array_equal(x[2], images[..., 2])
    assert y.tolist() == [0, 1, 9, 5]
    assert set(read_mat5(path)) == {"X", "y"}


def test_svhn_cropped_hdf5_and_errors(tmp_path):
    import h5py

    images = np.random.default_rng(4).integers(0, 256, (32, 32, 3, 2), dtype=np.uint8)
    with h5py.File(tmp_path / "v73.mat", "w") as h5file:
        h5file.create_dataset("X", data=images.T)  # HDF5 holds MATLAB arrays reversed
        h5file.create_dataset("y", data=np.array([[3.0, 10.0]]))
    x, y = load_svhn_cropped(tmp_path / "v73.mat")
    assert np.array_equal(x[1], images[..., 1]) and y.tolist() == [3, 0]

    write_mat5(tmp_path / "wrong.mat", {"Z": np.zeros((2, 2))}, compress=False)
    with pytest.raises(DataFormatError, match="expected variables X and y"):
        load_svhn_cropped(tmp_path / "wrong.mat")
    (tmp_path / "junk.mat").write_bytes(bytes(200))
    with pytest.raises(DataFormatError, match="not a MATLAB 5"):
        load_svhn_cropped(tmp_path / "junk.mat")


# ----------------------------------------------------------------------------- ORAND-CAR-A


def test_orand_labels_are_digits_sorted_by_x(tmp_path):
    folder = tmp_path / "orand-car-a"
    (folder / "images" / "train").mkdir(parents=True)
    coco = {
        "categories": [{"id": i, "name": str(i)} for i in range(10)],
        "images": [{"id": 0, "file_name": "a.jpg"}, {"id": 1, "file_name": "b.jpg"}],
        "annotations": [
            {"image_id": 0, "category_id": 5, "bbox": [40, 0, 5, 5]},
            {"image_id": 0, "category_id": 1, "bbox": [2, 0, 5, 5]},
            {"image_id": 0, "category_id": 0, "bbox": [20, 0, 5, 5]},
            {"image_id": 1, "category_id": 7, "bbox": [1, 0, 5, 5]},
        ],
    }
    (folder / "train.json").write_text(json.dumps(coco))
    samples = load_orand_car_a(tmp_path)
    assert [s.text for s in samples] == ["105", "7"]
    assert samples[0].path == folder / "images" / "train" / "a.jpg"
    (folder / "train.json").write_text("{}")
    with pytest.raises(DataFormatError, match="COCO"):
        load_orand_car_a(tmp_path)


def test_holdout_split_is_fixed_and_disjoint():
    items = list(range(100))
    train, held = split_holdout(items, 0.2, seed=5)
    assert len(held) == 20 and len(train) == 80 and not set(train) & set(held)
    assert split_holdout(items, 0.2, seed=5) == (train, held)


def test_real_orand_when_present():
    if not (DATA / "orand-car-a" / "train.json").is_file():
        pytest.skip("no ORAND-CAR-A data")
    samples = load_orand_car_a()
    assert len(samples) == 1080
    assert all(s.text.isdigit() and s.path.is_file() for s in samples[:50])
