"""Readers for the training data sets: IDX (MNIST / EMNIST), SVHN format 1 and cropped.

Every reader validates what it reads (magic numbers, counts, shapes) and raises
`DataFormatError` with a message naming the file, so a truncated download is a
clear error instead of a silent mis-read.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent

# IDX type byte -> numpy big-endian dtype (http://yann.lecun.com/exdb/mnist/)
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "t10k": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


class DataFormatError(ValueError):
    """A data file is missing, truncated or not in the expected format."""


class MissingDataError(DataFormatError):
    """A data file is not there at all (the data sets folder is missing or incomplete)."""


def default_data_dir() -> Path:
    """`$OCRD_DATA_DIR`, else `../shared/data` next to the repository."""
    env = os.environ.get("OCRD_DATA_DIR")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


def _read_bytes(path: Path) -> bytes:
    """File contents, transparently gunzipped when the file starts with the gzip magic."""
    path = Path(path)
    if not path.is_file():
        raise MissingDataError(f"{path}: no such file")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataFormatError(f"{path}: corrupt gzip data ({exc})") from exc
    return raw


def read_idx(path: Path | str, *, transposed: bool = False) -> np.ndarray:
    """Read an IDX file (gzip or plain) into a native-endian numpy array.

    `transposed=True` swaps the last two axes of each item: EMNIST stores its images
    column-major, so this flag gives them the same upright orientation as MNIST.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataFormatError(f"{path}: too short for an IDX header ({len(data)} bytes)")
    zero, type_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or type_code not in _IDX_DTYPES or ndim == 0:
        raise DataFormatError(f"{path}: bad IDX magic number {data[:4].hex()}")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DataFormatError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", data[4:header_size])
    dtype = _IDX_DTYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    payload = len(data) - header_size
    if payload != expected:
        raise DataFormatError(
            f"{path}: header says {shape} ({expected} bytes of data) but the file holds {payload}"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape)
    array = array.astype(dtype.newbyteorder("="))
    if transposed:
        if ndim < 3:
            raise DataFormatError(f"{path}: transposed=True needs items of 2 dimensions")
        array = np.ascontiguousarray(np.swapaxes(array, -1, -2))
    return array


def load_idx_pair(
    images_path: Path | str, labels_path: Path | str, *, transposed: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, H, W) uint8 and labels (N,) from an IDX pair, checking counts agree."""
    images = read_idx(images_path, transposed=transposed)
    labels = read_idx(labels_path)
    if images.ndim != 3:
        raise DataFormatError(f"{images_path}: expected (N, H, W) images, got {images.shape}")
    if labels.ndim != 1:
        raise DataFormatError(f"{labels_path}: expected (N,) labels, got {labels.shape}")
    if len(images) != len(labels):
        raise DataFormatError(
            f"{images_path} holds {len(images)} images but {labels_path} {len(labels)} labels"
        )
    return images.astype(np.uint8), labels.astype(np.int64)


def load_mnist(
    split: str = "train", data_dir: Path | str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """MNIST `split` ("train" or "t10k"): uint8 images (N, 28, 28), ink bright, and int labels.

    t10k is for evaluation only: never train, tune or pick checkpoints on it.
    """
    if split not in MNIST_FILES:
        raise ValueError(f"unknown MNIST split {split!r}; choose from {sorted(MNIST_FILES)}")
    folder = Path(data_dir) if data_dir else default_data_dir()
    images_name, labels_name = MNIST_FILES[split]
    return load_idx_pair(folder / "mnist" / images_name, folder / "mnist" / labels_name)


# --------------------------------------------------------------------------- SVHN


@dataclass(frozen=True)
class SvhnDigit:
    label: int  # 0-9 (SVHN's 10 is mapped to 0)
    left: float
    top: float
    width: float
    height: float


@dataclass(frozen=True)
class SvhnEntry:
    name: str
    digits: tuple[SvhnDigit, ...]

    @property
    def text(self) -> str:
        return "".join(str(d.label) for d in self.digits)


def _svhn_values(h5file, dataset) -> list[float]:
    """One bbox field: a single inline value, or a column of references to scalars."""
    if dataset.shape[0] == 1:
        return [float(np.asarray(dataset).reshape(-1)[0])]
    return [float(np.asarray(h5file[ref]).reshape(-1)[0]) for ref in np.asarray(dataset).ravel()]


def read_svhn_digit_struct(path: Path | str) -> list[SvhnEntry]:
    """SVHN format 1 `digitStruct.mat` (MATLAB v7.3 = HDF5): per image its name and digits.

    Each `digitStruct/name` and `digitStruct/bbox` element is an HDF5 object reference;
    a bbox group holds label/left/top/width/height either inline (one digit) or as
    references to scalars (several digits). Label 10 means the digit 0.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise MissingDataError(f"{path}: no such file")
    try:
        h5file = h5py.File(path, "r")
    except OSError as exc:
        raise DataFormatError(f"{path}: not an HDF5 (MATLAB v7.3) file ({exc})") from exc
    entries: list[SvhnEntry] = []
    with h5file:
        if "digitStruct" not in h5file:
            raise DataFormatError(f"{path}: no digitStruct group")
        group = h5file["digitStruct"]
        if "name" not in group or "bbox" not in group:
            raise DataFormatError(f"{path}: digitStruct lacks name/bbox")
        name_refs = np.asarray(group["name"]).ravel()
        bbox_refs = np.asarray(group["bbox"]).ravel()
        if len(name_refs) != len(bbox_refs):
            raise DataFormatError(
                f"{path}: {len(name_refs)} names but {len(bbox_refs)} bboxes in digitStruct"
            )
        for name_ref, bbox_ref in zip(name_refs, bbox_refs, strict=True):
            chars = np.asarray(h5file[name_ref]).ravel()
            name = "".join(chr(int(c)) for c in chars)
            bbox = h5file[bbox_ref]
            fields = {
                key: _svhn_values(h5file, bbox[key])
                for key in ("label", "left", "top", "width", "height")
            }
            counts = {len(values) for values in fields.values()}
            if len(counts) != 1:
                raise DataFormatError(f"{path}: {name}: bbox fields disagree on digit count")
            digits = tuple(
                SvhnDigit(int(label) % 10, left, top, width, height)
                for label, left, top, width, height in zip(*fields.values(), strict=True)
            )
            entries.append(SvhnEntry(name, digits))
    return entries


# MATLAB level-5 MAT-file data types (MATLAB "MAT-File Format" reference, table 1-1)
_MI_TYPES = {
    1: np.dtype("i1"),
    2: np.dtype("u1"),
    3: np.dtype("i2"),
    4: np.dtype("u2"),
    5: np.dtype("i4"),
    6: np.dtype("u4"),
    7: np.dtype("f4"),
    9: np.dtype("f8"),
    12: np.dtype("i8"),
    13: np.dtype("u8"),
}
_MI_MATRIX = 14
_MI_COMPRESSED = 15


def _mat5_elements(buffer: bytes, endian: str, path: Path):
    """Yield (type, payload bytes) for each tagged data element of a v5 MAT buffer."""
    offset = 0
    while offset + 8 <= len(buffer):
        data_type, size = struct.unpack(endian + "II", buffer[offset : offset + 8])
        if data_type >> 16:  # small data element: type and size packed in 4 bytes
            size, data_type = data_type >> 16, data_type & 0xFFFF
            yield data_type, buffer[offset + 4 : offset + 4 + size]
            offset += 8
            continue
        start = offset + 8
        if start + size > len(buffer):
            raise DataFormatError(f"{path}: truncated MAT data element")
        yield data_type, buffer[start : start + size]
        offset = start + size
        if data_type != _MI_COMPRESSED:
            offset += -size % 8  # elements are padded to 8 bytes


def _mat5_matrix(payload: bytes, endian: str, path: Path) -> tuple[str, np.ndarray]:
    """A numeric miMATRIX element -> (variable name, array in MATLAB's column-major order)."""
    parts = list(_mat5_elements(payload, endian, path))
    if len(parts) < 4:
        raise DataFormatError(f"{path}: malformed MAT matrix")
    (_, flags), (_, dims_raw), (_, name_raw), (real_type, real) = parts[:4]
    matlab_class = struct.unpack(endian + "I", flags[:4])[0] & 0xFF
    if matlab_class in (1, 2, 3, 4, 5):  # cell, struct, object, char, sparse
        return name_raw.decode("ascii", "replace"), np.empty(0)
    dims = np.frombuffer(dims_raw, dtype=endian + "i4")
    if real_type not in _MI_TYPES:
        raise DataFormatError(f"{path}: unsupported MAT data type {real_type}")
    values = np.frombuffer(real, dtype=_MI_TYPES[real_type].newbyteorder(endian))
    if values.size != int(np.prod(dims)):
        raise DataFormatError(f"{path}: MAT variable holds {values.size} values for dims {dims}")
    return name_raw.decode("ascii"), values.reshape(tuple(dims), order="F")


def read_mat5(path: Path | str) -> dict[str, np.ndarray]:
    """Numeric variables of a MATLAB level-5 MAT file (the format of SVHN's `*_32x32.mat`).

    Hand-written because scipy is not a dependency; only numeric matrices are read
    (compressed or not), which is all the SVHN cropped files hold.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingDataError(f"{path}: no such file")
    raw = path.read_bytes()
    if len(raw) < 128:
        raise DataFormatError(f"{path}: too short for a MAT file header")
    endian_mark = raw[126:128]
    if endian_mark == b"IM":
        endian = "<"
    elif endian_mark == b"MI":
        endian = ">"
    else:
        raise DataFormatError(f"{path}: not a MATLAB 5 MAT file (v7.3 files are HDF5)")
    variables: dict[str, np.ndarray] = {}
    for data_type, payload in _mat5_elements(raw[128:], endian, path):
        if data_type == _MI_COMPRESSED:
            try:
                payload = zlib.decompress(payload)
            except zlib.error as exc:
                raise DataFormatError(f"{path}: corrupt compressed MAT element ({exc})") from exc
            data_type, size = struct.unpack(endian + "II", payload[:8])
            payload = payload[8 : 8 + size]
        if data_type == _MI_MATRIX:
            name, array = _mat5_matrix(payload, endian, path)
            if array.size:
                variables[name] = array
    return variables


def load_svhn_cropped(path: Path | str) -> tuple[np.ndarray, np.ndarray]:
    """SVHN format 2 `*_32x32.mat` -> RGB images (N, 32, 32, 3) uint8 and labels (N,) 0-9.

    Reads the MATLAB 5 file (`X` is 32x32x3xN, `y` is Nx1 with 10 for the digit 0) or the
    same variables from a v7.3 (HDF5) file.
    """
    path = Path(path)
    head = path.read_bytes()[:520] if path.is_file() else b""
    hdf5_magic = b"\x89HDF\r\n\x1a\n"
    if hdf5_magic in (head[:8], head[512:520]):  # v7.3: HDF5, maybe after a 512-byte header
        import h5py

        with h5py.File(path, "r") as h5file:
            # HDF5 stores MATLAB arrays with their dimensions reversed.
            variables = {key: np.asarray(h5file[key]).T for key in ("X", "y") if key in h5file}
    else:
        variables = read_mat5(path)
    if "X" not in variables or "y" not in variables:
        raise DataFormatError(f"{path}: expected variables X and y, found {sorted(variables)}")
    images, labels = variables["X"], variables["y"].reshape(-1)
    if images.ndim != 4 or images.shape[:3] != (32, 32, 3):
        raise DataFormatError(f"{path}: X should be 32x32x3xN, is {images.shape}")
    if images.shape[3] != labels.size:
        raise DataFormatError(f"{path}: {images.shape[3]} images but {labels.size} labels")
    images = np.ascontiguousarray(np.transpose(images, (3, 0, 1, 2))).astype(np.uint8)
    return images, labels.astype(np.int64) % 10


# ------------------------------------------------------------------- ORAND-CAR-A


@dataclass(frozen=True)
class StringSample:
    path: Path
    text: str  # the digits, left to right (separators are not labelled)
    # (x, y, w, h) of each digit in image pixels, in the order of `text` (empty if unknown)
    boxes: tuple[tuple[int, int, int, int], ...] = ()


def load_orand_car_a(data_dir: Path | str | None = None) -> list[StringSample]:
    """ORAND-CAR-A cheque amounts from the COCO `train.json`: image path and digit string.

    The string is the image's digit boxes sorted by x; images with no box are skipped.
    """
    import json

    folder = (Path(data_dir) if data_dir else default_data_dir()) / "orand-car-a"
    annotation_path = folder / "train.json"
    if not annotation_path.is_file():
        raise DataFormatError(f"{annotation_path}: no such file")
    try:
        coco = json.loads(annotation_path.read_text())
        images = {image["id"]: image["file_name"] for image in coco["images"]}
        names = {category["id"]: category["name"] for category in coco["categories"]}
        boxes: dict[int, list[tuple[float, str, tuple[int, ...]]]] = {}
        for annotation in coco["annotations"]:
            digit = names[annotation["category_id"]]
            box = tuple(int(round(v)) for v in annotation["bbox"])
            boxes.setdefault(annotation["image_id"], []).append((box[0], digit, box))
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise DataFormatError(f"{annotation_path}: not the expected COCO layout ({exc})") from exc
    samples = []
    for image_id, file_name in sorted(images.items()):
        if image_id in boxes:
            ordered = sorted(boxes[image_id])
            text = "".join(digit for _, digit, _ in ordered)
            digit_boxes = tuple(box for _, _, box in ordered)
            samples.append(StringSample(folder / "images" / "train" / file_name, text, digit_boxes))
    return samples


def split_holdout(samples: list, fraction: float = 0.2, seed: int = 2014) -> tuple[list, list]:
    """A fixed seeded (train, hold-out) split; the hold-out seed is independent of training's."""
    order = np.random.default_rng(seed).permutation(len(samples))
    cut = int(round(len(samples) * fraction))
    held = sorted(order[:cut].tolist())
    kept = sorted(order[cut:].tolist())
    return [samples[i] for i in kept], [samples[i] for i in held]
