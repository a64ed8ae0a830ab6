"""Catalogue of the public checkpoints of the zoo's models, as data (nothing is downloaded here).

Each :class:`Checkpoint` names where the weights are published, what they were trained on, the top-1
accuracy their source publishes (verbatim, with the source), and which converter of
:mod:`baselines.convert` turns them into the zoo's layout::

    import torch, baselines
    from baselines.weights import CHECKPOINTS

    ckpt = CHECKPOINTS["x3d_m_k400"]
    foreign = torch.load(path_of_the_downloaded_file, map_location="cpu", weights_only=True)
    if ckpt.state_dict_key:
        foreign = foreign[ckpt.state_dict_key]
    model = baselines.build(ckpt.model, num_classes=ckpt.num_classes)
    if ckpt.backbone_only:
        model.reset_classifier(0)
    model.load_state_dict(getattr(baselines, ckpt.converter)(foreign, ckpt.model))

Integrity data is recorded only where it is published or can be read from the source itself, never
guessed: ``sha256_prefix`` is the leading sha256 digits in torchvision's file names (``torch.hub``
checks them), ``git_blob_sha1`` the git object id of a file committed to a repository (the sha1 of
``b"blob <size>\\0" + content``), ``size_mb`` a published file size. None means unknown.

The GRW authors' four snapshots (``a0s_grw.pt`` ... in the Hugging Face repository
``DrGil/grw-smoothing-movinet``) are catalogued too, with ``converter="grw-authors"``: they are not a
backbone layout but a whole model (backbone, GRW head, EMA weights) in a pickle that only
``benchmarks.engine.authors.read_snapshot`` reads safely, so their converter lives there
(``benchmarks.engine.authors.to_grw_state_dict``), not in :mod:`baselines`. Their top-1 is the paper's
Table 1 number of the row they were released for.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Checkpoint", "CHECKPOINTS", "GRW_AUTHORS_CONVERTER", "GRW_AUTHORS_REPO", "checkpoints_for"]

MOVINET_PYTORCH_COMMIT = "c2d1edf48fc6c5259707f9d833f22171b4f63493"  # the commit whose files are listed
_MOVINET_PYTORCH = "https://github.com/Atze00/MoViNet-pytorch/blob/main/weights/{file}?raw=true"
_MOVINET_PYTORCH_SOURCE = (
    f"Atze00/MoViNet-pytorch@{MOVINET_PYTORCH_COMMIT[:7]}: movinets/config.py (URL), README.md (top-1: the "
    "official TF models' Kinetics-600 numbers, as listed there)"
)
_PYTORCHVIDEO = "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/{file}"
_PYTORCHVIDEO_SOURCE = "pytorchvideo 0.1.5: models/hub/x3d.py (URL, top-1); docs MODEL_ZOO (top-1, 3 x 10 views)"
_TORCHVISION_SOURCE = "torchvision {weights}.IMAGENET1K_V1 meta (URL, acc@1, file size)"


@dataclass(frozen=True)
class Checkpoint:
    name: str  # catalogue name: <registry model>_<dataset>
    model: str  # registry name (baselines.build)
    dataset: str
    num_classes: int  # classifier width of the published weights
    url: str
    source: str  # where the URL and the accuracy are published
    top1: float | None  # published top-1 (%), as published by `source`
    eval_input: str  # frames x crop of the published accuracy
    converter: str  # function of baselines (baselines.convert) that maps the weights, or GRW_AUTHORS_CONVERTER
    state_dict_key: str | None = None  # the state dict sits under this key of the file
    backbone_only: bool = False  # converted without the classifier: load after reset_classifier(0)
    size_mb: float | None = None
    sha256: str | None = None
    sha256_prefix: str | None = None
    git_blob_sha1: str | None = None
    hf_repo: str | None = None  # Hugging Face repository holding the file (``url`` is its resolve URL)
    hf_file: str | None = None
    has_ema: bool = False  # the file holds EMA weights besides the raw ones
    grw_head: bool = False  # a whole GRW model (backbone + the authors' head), for the GRW rows


def _movinet(variant: str, stream: bool, top1: float, eval_input: str, blob: str) -> Checkpoint:
    model = f"movinet_{variant}_stream" if stream else f"movinet_{variant}"
    file = f"model{variant.upper()}{'_stream' if stream else ''}_statedict_v3"
    return Checkpoint(
        name=f"{model}_k600",
        model=model,
        dataset="Kinetics-600",
        num_classes=600,
        url=_MOVINET_PYTORCH.format(file=file),
        source=_MOVINET_PYTORCH_SOURCE,
        top1=top1,
        eval_input=eval_input,
        converter="from_movinet_pytorch",
        git_blob_sha1=blob,
    )


def _x3d(variant: str, top1: float, eval_input: str) -> Checkpoint:
    return Checkpoint(
        name=f"x3d_{variant}_k400",
        model=f"x3d_{variant}",
        dataset="Kinetics-400",
        num_classes=400,
        url=_PYTORCHVIDEO.format(file=f"X3D_{variant.upper()}.pyth"),
        source=_PYTORCHVIDEO_SOURCE,
        top1=top1,
        eval_input=eval_input,
        converter="from_pytorchvideo",
        state_dict_key="model_state",
    )


def _mobilenet(variant: str, weights: str, file: str, top1: float, size_mb: float) -> list[Checkpoint]:
    return [
        Checkpoint(
            name=f"{model}_imagenet",
            model=model,
            dataset="ImageNet-1K",
            num_classes=1000,
            url=f"https://download.pytorch.org/models/{file}",
            source=_TORCHVISION_SOURCE.format(weights=weights),
            top1=top1,
            eval_input="1 x 224",
            converter="from_torchvision_mobilenet",
            backbone_only=True,
            size_mb=size_mb,
            sha256_prefix=file.rsplit("-", 1)[1].split(".")[0],
        )
        for model in (f"mobilenet_v3_{variant}", f"mobilenet_v3_{variant}_tsm")
    ]


GRW_AUTHORS_REPO = "DrGil/grw-smoothing-movinet"
GRW_AUTHORS_CONVERTER = "grw-authors"  # benchmarks.engine.authors.read_snapshot + to_grw_state_dict
_GRW_AUTHORS_SOURCE = (
    f"huggingface.co/{GRW_AUTHORS_REPO} (file); top-1: Goldman et al., NeurIPS 2025, Table 1 (the row the "
    "snapshot was released for)"
)


def _grw_authors(file: str, model: str, top1: float, eval_input: str) -> Checkpoint:
    return Checkpoint(
        name=file.removesuffix(".pt"),
        model=model,
        dataset="Kinetics-600",
        num_classes=600,
        url=f"https://huggingface.co/{GRW_AUTHORS_REPO}/resolve/main/{file}",
        source=_GRW_AUTHORS_SOURCE,
        top1=top1,
        eval_input=eval_input,
        converter=GRW_AUTHORS_CONVERTER,
        hf_repo=GRW_AUTHORS_REPO,
        hf_file=file,
        has_ema=True,
        grw_head=True,
    )


_ALL: list[Checkpoint] = [
    # MoViNet-pytorch: base A0-A5 (3D) and stream A0-A2 ((2+1)D); git blob ids at MOVINET_PYTORCH_COMMIT
    _movinet("a0", False, 72.28, "50 x 172", "8c3bf9376a49d9db72709d5fb60bd0a635069044"),
    _movinet("a1", False, 76.69, "50 x 172", "b0cd3abd2ea411382e8e999c7d2cdf2992728d2a"),
    _movinet("a2", False, 78.62, "50 x 224", "999f187b11ee6d477c5f3c8141119d8183c0e072"),
    _movinet("a3", False, 81.79, "120 x 256", "dd9a1b1e5cf46068d0beb3d6edc5c3f0c350f694"),
    _movinet("a4", False, 83.48, "80 x 290", "34e8b8c2c9488bc14161ffacae58fa94b6791f43"),
    _movinet("a5", False, 84.27, "120 x 320", "fce6b0ac5636ed15419ebcaaa6a6067838d2591a"),
    _movinet("a0", True, 72.05, "50 x 172", "1b467adcbf00040713526ec927b3fbfd5aaac487"),
    _movinet("a1", True, 76.45, "50 x 172", "85acc3e843b293c3a26c7baabd0af711073c1fb7"),
    _movinet("a2", True, 78.40, "50 x 224", "fdf1c2e57d36d86607b9b29063ab798eabc1bb83"),
    # pytorchvideo X3D (Kinetics-400; the .pyth file holds {"model_state": ...})
    _x3d("xs", 69.12, "4 x 160"),
    _x3d("s", 73.33, "13 x 160"),
    _x3d("m", 75.94, "16 x 224"),
    _x3d("l", 77.44, "16 x 312"),
    # torchvision ImageNet MobileNetV3, the 2D initialisation of the frame-wise and TSM models
    *_mobilenet("small", "MobileNet_V3_Small_Weights", "mobilenet_v3_small-047dcff4.pth", 67.668, 9.829),
    *_mobilenet("large", "MobileNet_V3_Large_Weights", "mobilenet_v3_large-8738ca79.pth", 74.042, 21.114),
    # the GRW authors' snapshots (whole models: backbone + GRW head, raw and EMA weights), Table 1 rows 1, 6, 12, 15
    _grw_authors("a0s_grw.pt", "movinet_a0_stream", 78.4, "50 x 172"),
    _grw_authors("a1s_grw.pt", "movinet_a1_stream", 81.9, "50 x 172"),
    _grw_authors("a2s_grw.pt", "movinet_a2_stream", 83.3, "50 x 224"),
    _grw_authors("a3b_grw.pt", "movinet_a3", 85.6, "120 x 256"),
]

CHECKPOINTS: dict[str, Checkpoint] = {checkpoint.name: checkpoint for checkpoint in _ALL}


def checkpoints_for(model: str) -> list[Checkpoint]:
    """The catalogued checkpoints that load into the registry model ``model``."""
    return [checkpoint for checkpoint in _ALL if checkpoint.model == model]
