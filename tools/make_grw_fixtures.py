"""Regenerate the golden GRW fixtures in ``tests/fixtures/grw/`` by running the authors' own classes.

    git clone https://github.com/gilgoldm/grw-smoothing /tmp/grw-smoothing
    git -C /tmp/grw-smoothing checkout 7a3aefabd799d52cf16cd073676112f8660d8a54
    pip install --target /tmp/grw-deps einops        # their MoViNet copy imports einops
    PYTHONPATH=/tmp/grw-deps python tools/make_grw_fixtures.py /tmp/grw-smoothing

The script refuses a checkout at any other commit than ``--commit`` (default: the commit the suite's
specs cite, ``benchmarks.table1.specs.AUTHORS_COMMIT``). Nothing of the authors' code is copied: it is
imported from the checkout and run.

What it builds, with random weights (seeded):

- the authors' ``ActionRecognitionModel`` on their A0-S backbone class (``a0s_backbone.MovinetBackbone``
  around ``a0s_backbone.MoViNet_``, i.e. their copy of MoViNet-pytorch's model, in the stream layout
  that ``pretrained=True, causal=True`` selects: causal, (2+1)D convolutions, TF-like padding) with a
  reduced-width MoViNet config (``TINY_MOVINET`` below; conv7 keeps A0's 480 channels because their
  class hard-codes ``Linear(480, embed_dim)``) and a tiny ``TransformerParams``. The backbone object
  is made without calling ``MovinetBackbone.__init__``, which would download the full A0 weights; the
  encoder is the same class with the options ``pretrained=True`` implies.
- an EMA of it, ``torch.optim.swa_utils.AveragedModel(use_buffers=True)``, updated after a perturbation
  so that raw and EMA weights differ;
- the snapshot, written by their ``ActionRecognitionModel.save`` (their exact format: pickled
  ``TransformerParams``, the backbone class reference, the ``AveragedModel`` state dict, version 10);
- their outputs, from models read back with their ``ActionRecognitionModel.load`` (raw and
  ``load_ema=True``) in eval mode: for one input clip, the per-frame conv7 features that enter the
  projection, ``Z`` and the logits, and their ``GrwSmoothingLoss`` on ``Z``'s windows.

Their ``backbones/movinets/a0s/a0s_backbone.py`` imports ``movinets.config._C`` (the full configs of
MoViNet-pytorch); only the reduced config is used here, so when the ``movinets`` package is not
installed a stand-in module with an empty ``_C`` is registered for that import.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.table1.specs import AUTHORS_COMMIT, AUTHORS_REPO  # noqa: E402

OUT_DIR = REPO_ROOT / "tests" / "fixtures" / "grw"
SNAPSHOT = "authors_a0s_tiny.pt"
OUTPUTS = "authors_a0s_tiny_outputs.pt"
MANIFEST = "manifest.json"

SEED = 0
T = 5
BATCH, FRAMES, SIZE = 2, 10, 24
NUM_SAMPLES = 123456
TRANSFORMER = dict(embed_dim=16, depth=2, num_heads=2, mlp_dim=24, num_classes=5)
EMA_DECAY = 0.9


def _conv(input_channels, out_channels, kernel_size, stride, padding):
    return dict(input_channels=input_channels, out_channels=out_channels, kernel_size=kernel_size,
                stride=stride, padding=padding)


def _block(input_channels, out_channels, expanded_channels, kernel_size, stride, padding, padding_avg):
    return dict(_conv(input_channels, out_channels, kernel_size, stride, padding),
                expanded_channels=expanded_channels, padding_avg=padding_avg)


# A reduced MoViNet-A0 in MoViNet-pytorch's config terms (movinets/config.py): A0's stem, one layer of
# its first block and two of its second at reduced widths, A0's conv7 width (480).
TINY_MOVINET = dict(
    name="A0-tiny",
    conv1=_conv(3, 8, (1, 3, 3), (1, 2, 2), (0, 1, 1)),
    blocks=[
        [_block(8, 8, 16, (1, 5, 5), (1, 2, 2), (0, 2, 2), (0, 1, 1))],
        [_block(8, 16, 24, (3, 3, 3), (1, 2, 2), (1, 0, 0), (0, 0, 0)),
         _block(16, 16, 24, (3, 3, 3), (1, 1, 1), (1, 1, 1), (0, 1, 1))],
    ],
    conv7=_conv(16, 480, (1, 1, 1), (1, 1, 1), (0, 0, 0)),
    dense9=dict(hidden_dim=32),
)


def _as_cfg(value):
    """The config as attribute-access namespaces (what their code reads from a yacs/fvcore CfgNode)."""
    if isinstance(value, dict):
        return SimpleNamespace(**{k: _as_cfg(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_as_cfg(v) for v in value]
    return value


def check_commit(checkout: Path, commit: str) -> None:
    head = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        sys.exit(f"{checkout} is not a git checkout: {head.stderr.strip()}")
    if head.stdout.strip() != commit:
        sys.exit(f"{checkout} is at {head.stdout.strip()}, expected {commit} ({AUTHORS_REPO}); check it out first")
    dirty = subprocess.run(["git", "-C", str(checkout), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    if dirty:
        sys.exit(f"{checkout} has local changes; the fixtures must come from the commit as published:\n{dirty}")


def import_authors(checkout: Path) -> SimpleNamespace:
    for package in ("packages/grw-smoothing-models/src", "packages/grw-smoothing/src"):
        sys.path.insert(0, str(checkout / package))
    try:
        import movinets.config  # noqa: F401
    except ImportError:
        stand_in = types.ModuleType("movinets")
        stand_in.config = types.ModuleType("movinets.config")
        stand_in.config._C = None
        sys.modules["movinets"] = stand_in
        sys.modules["movinets.config"] = stand_in.config
    from grw_smoothing import loss
    from grw_smoothing_models.backbones.movinets.a0s import a0s_backbone
    from grw_smoothing_models.model import action_recognition_model, attention, video_backbone

    for module in (loss, a0s_backbone, action_recognition_model):
        if not Path(module.__file__).resolve().is_relative_to(checkout.resolve()):
            sys.exit(f"{module.__name__} was imported from {module.__file__}, not from {checkout}")
    return SimpleNamespace(loss=loss, a0s=a0s_backbone, arm=action_recognition_model, attention=attention,
                           video_backbone=video_backbone)


def tiny_backbone(authors: SimpleNamespace, embed_dim: int) -> torch.nn.Module:
    """Their ``MovinetBackbone`` holding their ``MoViNet_`` built from the reduced config.

    ``MovinetBackbone.__init__`` would build the full A0 and download its weights; instead the object is
    made with ``VideoBackbone.__init__`` and given the encoder ``pretrained=True, causal=True`` selects
    (conv_type "2plus1d", tf_like True, 600 classes), from the reduced config, without weights.
    """
    backbone = authors.a0s.MovinetBackbone.__new__(authors.a0s.MovinetBackbone)
    authors.video_backbone.VideoBackbone.__init__(backbone, embed_dim=embed_dim)
    backbone._encoder = authors.a0s.MoViNet_(
        embed_dim=embed_dim, cfg=_as_cfg(TINY_MOVINET), causal=True, pretrained=False, num_classes=600,
        conv_type="2plus1d", tf_like=True, max_drop_path_rate=0.0,
    )
    return backbone


@torch.no_grad()
def randomize(model: torch.nn.Module, generator: torch.Generator) -> None:
    """Random weights everywhere (the ReZero gates too, which start at 0), positive BN variances."""
    for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
        if not tensor.is_floating_point():
            continue
        if name.endswith("running_var"):
            tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
        elif name.endswith(".alpha") or tensor.dim() == 1 and name.endswith("weight"):
            tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)  # gates, norm scales
        else:
            fan_in = tensor[0].numel() if tensor.dim() > 1 else 4
            tensor.copy_(torch.randn(tensor.shape, generator=generator) / fan_in**0.5)


@torch.no_grad()
def run_authors(authors, path: Path, clip: torch.Tensor, ema: bool) -> dict[str, torch.Tensor]:
    """Their model read back by their ``load`` from the snapshot; their outputs on ``clip``, in eval mode."""
    model, _ = authors.arm.ActionRecognitionModel.load(
        model_path=str(path), video_backbone=tiny_backbone(authors, TRANSFORMER["embed_dim"]),
        dropout=0, stochastic_depth=0, load_ema=ema,
    )
    model.eval()
    captured = {}

    def keep_input(module, inputs):  # returns None: the forward is left as it is
        captured["feats"] = inputs[0]

    projection = model.video_backbone._encoder.classifier  # their Linear(480, embed_dim)
    handle = projection.register_forward_pre_hook(keep_input)
    logits, z = model(clip)
    handle.remove()
    b, n = clip.shape[:2]
    grw = authors.loss.GrwSmoothingLoss(T=T, alpha=0.5)(z.reshape(-1, T, z.shape[-1]))
    return {"feats": captured["feats"].reshape(b, n, -1), "z": z, "logits": logits, "grw_loss": grw}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkout", type=Path, help=f"a git checkout of {AUTHORS_REPO}")
    parser.add_argument("--commit", default=AUTHORS_COMMIT, help="the commit the checkout must be at")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="fixture folder (default: %(default)s)")
    args = parser.parse_args(argv)

    check_commit(args.checkout, args.commit)
    authors = import_authors(args.checkout)
    torch.manual_seed(SEED)
    generator = torch.Generator().manual_seed(SEED)

    params = authors.attention.TransformerParams(**TRANSFORMER)
    model = authors.arm.ActionRecognitionModel(
        video_backbone=tiny_backbone(authors, params.embed_dim), T=T, transformer_params=params,
    )
    randomize(model, generator)
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(EMA_DECAY), use_buffers=True)
    ema.update_parameters(model)  # first update: a copy
    with torch.no_grad():  # stands in for training steps
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                scale = tensor.std() if tensor.numel() > 1 else 1.0
                tensor.add_(0.1 * scale * torch.randn(tensor.shape, generator=generator))
                if name.endswith("running_var"):
                    tensor.abs_()
    ema.update_parameters(model)

    args.out.mkdir(parents=True, exist_ok=True)
    snapshot_path = args.out / SNAPSHOT
    model.save(str(snapshot_path), NUM_SAMPLES, ema_weights=ema.state_dict())

    clip = torch.rand(BATCH, FRAMES, 3, SIZE, SIZE, generator=generator)  # their layout [B, N, 3, H, W], in [0, 1]
    outputs = {"clip": clip}
    for variant, use_ema in (("raw", False), ("ema", True)):
        for key, value in run_authors(authors, snapshot_path, clip, use_ema).items():
            outputs[f"{variant}_{key}"] = value.detach().clone()
    torch.save(outputs, args.out / OUTPUTS)

    manifest = {
        "generated_by": "tools/make_grw_fixtures.py",
        "authors_repo": AUTHORS_REPO,
        "authors_commit": args.commit,
        "torch": torch.__version__,
        "seed": SEED,
        "T": T,
        "num_samples": NUM_SAMPLES,
        "transformer_params": TRANSFORMER,
        "ema_decay": EMA_DECAY,
        "backbone_class": f"{authors.a0s.MovinetBackbone.__module__}.{authors.a0s.MovinetBackbone.__qualname__}",
        "backbone_config": {"movinet_pytorch_config": TINY_MOVINET, "causal": True, "conv_type": "2plus1d",
                            "tf_like": True},
        "clip_layout": "[B, N, 3, H, W] (the authors' layout; the suite's is [B, 3, N, H, W])",
        "files": {name: {"bytes": (args.out / name).stat().st_size,
                         "sha256": hashlib.sha256((args.out / name).read_bytes()).hexdigest()}
                  for name in (SNAPSHOT, OUTPUTS)},
    }
    (args.out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    for name, entry in manifest["files"].items():
        print(f"{args.out / name}: {entry['bytes']} bytes")


if __name__ == "__main__":
    main()
