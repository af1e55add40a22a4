"""`python -m training ensemble A.keras B.keras`: two line models shipped as one.

Two line models trained from scratch with other seeds and data mixes err on different
writing; where they read a field the same, the reading is far more often right, and where
they differ, that disagreement is evidence the confidence must show. The members are joined
into one Keras model (one input, their softmax outputs side by side: (N, W/4, 11 * k)), so
the LiteRT export, the batching and the manifest check stay as they are for one model;
`ocrd.recognition` splits the output per member and lets the readings vote.
"""

from __future__ import annotations

from pathlib import Path

from training.sequence import LINE_HEIGHT


def join_members(paths: list[Path]):
    """The members' shipped `lines.keras` files -> one model with their outputs concatenated."""
    import keras
    from keras import layers

    inputs = keras.Input((LINE_HEIGHT, None, 1), name="line")
    outputs = []
    for index, path in enumerate(paths):
        member = keras.models.load_model(path, compile=False)
        member.name = f"member_{index}"
        outputs.append(member(inputs))
    joined = layers.Concatenate(axis=-1, name="members")(outputs)
    return keras.Model(inputs, joined, name="lines")


def ship_ensemble(paths: list[Path], out_dir: Path, version: str, log=print) -> dict:
    """Write the joined model as `out_dir/lines.keras` and record it in the manifest with
    each member's own entry (how it was trained, its figures)."""
    from training.manifest import read_manifest, record_model, sha256_of

    members = []
    for path in paths:
        entry = read_manifest(Path(path).parent).get("models", {}).get("lines", {})
        members.append({**entry, "file": Path(path).name, "sha256": sha256_of(Path(path))})
    model = join_members([Path(p) for p in paths])
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "lines.keras"
    model.save(target)
    log(f"ensemble of {len(paths)} line models -> {target}")
    first = members[0]
    return record_model(
        out_dir,
        "lines",
        target,
        {
            "name": "lines",
            "version": version,
            "members": len(paths),
            "input": first.get("input"),
            "output": f"(N, W/4, 11 * {len(paths)}): each member's per-frame softmax in turn "
            "(classes 0-9 digits, 10 = CTC blank; greedy decoding per member, then a vote)",
            "member_models": members,
        },
    )
