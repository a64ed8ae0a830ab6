"""Write the MoViNet-pytorch reference fixtures of ``tests/test_movinet_convert.py``.

MoViNet-pytorch (``Atze00/MoViNet-pytorch``, ports of the official TF Kinetics-600 checkpoints) is
not on PyPI, and its code is not part of this repository. This script runs it once, from a local git
checkout at the pinned commit, on a *reduced-width* MoViNet (the same code paths as A0-A5: 3D and
(2+1)D convs, kernels 1x5x5 / 3x3x3 / 5x3x3, stride-2 layers on odd and even sizes, shortcuts with
and without pooling), with random weights and batch-norm statistics, and saves what the tests need::

    tests/fixtures/movinet_pytorch_{base,stream}.pt   (torch.save; load with weights_only=True)
        commit          the MoViNet-pytorch commit that produced the numbers
        spec            the reduced architecture, in the layout of baselines/movinet_specs.json
        num_classes     classifier width
        causal          False (base: 3D convs) / True (stream: (2+1)D convs, causal)
        state_dict      their model's state dict (their key names and shapes)
        frames          the input clip, uint8 [B, 3, T, H, W]; the model sees frames / 255
        logits          their logits for the whole clip [B, num_classes]
        conv7_frames    their conv7 output averaged over space, per frame [B, T, project_filters]
        stream_logits   (stream only) their logits after each frame, fed one frame at a time [T, B, C]

    tests/fixtures/movinet_pytorch_shapes.json.gz
        {"commit": ..., "models": {registry name: {their key: shape}}}: the names and shapes of their
        full-size A0-A5 base and A0-A2 stream models (what their pretrained weights load into)

How their stream model is driven: it keeps its stream buffers inside its modules, so
``clean_activation_buffers()`` must be called before every new video; then each call returns the
logits of CGAP over all frames fed since the last clean (the whole clip after its last chunk).

Usage (a checkout or a bare clone holding the pinned commit; its files at that commit are used)::

    python tools/make_movinet_fixtures.py /path/to/MoViNet-pytorch

Needs ``einops`` and ``fvcore`` (MoViNet-pytorch imports them).
"""

from __future__ import annotations

import argparse
import gzip
import importlib
import io
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

COMMIT = "c2d1edf48fc6c5259707f9d833f22171b4f63493"  # MoViNet-pytorch 0.2.2, 2021-09-06
OUT_DIR = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
SEED = 0
NUM_CLASSES = 10
CLIP = (2, 3, 8, 36, 36)  # B, C, T, H, W: 36 -> 18 -> 9 -> 5 -> 3 -> 2, odd and even sizes

# A reduced MoViNet: every kind of layer of A0-A2 once or twice, at small widths.
REDUCED_SPEC: dict[str, Any] = {
    "stem": {"filters": 8, "kernel": [1, 3, 3], "stride": [1, 2, 2]},
    "head": {"project_filters": 48, "hidden_filters": 64},
    "stream_positional_encoding": False,
    "blocks": [
        {"base_filters": 8, "layers": [{"expand_filters": 16, "kernel": [1, 5, 5], "stride": [1, 2, 2]}]},
        {"base_filters": 16, "layers": [
            {"expand_filters": 40, "kernel": [3, 3, 3], "stride": [1, 2, 2]},
            {"expand_filters": 40, "kernel": [3, 3, 3], "stride": [1, 1, 1]},
        ]},
        {"base_filters": 24, "layers": [
            {"expand_filters": 56, "kernel": [5, 3, 3], "stride": [1, 2, 2]},
            {"expand_filters": 48, "kernel": [1, 5, 5], "stride": [1, 1, 1]},
        ]},
        {"base_filters": 24, "layers": [{"expand_filters": 64, "kernel": [5, 3, 3], "stride": [1, 1, 1]}]},
        {"base_filters": 32, "layers": [
            {"expand_filters": 80, "kernel": [5, 3, 3], "stride": [1, 2, 2]},
            {"expand_filters": 72, "kernel": [1, 3, 3], "stride": [1, 1, 1]},
        ]},
    ],
}


def import_movinets(repo: Path, workdir: Path) -> Any:
    """Their ``movinets`` package, exactly as in COMMIT (extracted with ``git archive``)."""
    found = subprocess.run(["git", "-C", str(repo), "cat-file", "-t", COMMIT], capture_output=True, text=True)
    if found.returncode != 0 or found.stdout.strip() != "commit":
        raise SystemExit(f"{repo} does not hold MoViNet-pytorch commit {COMMIT}")
    archive = subprocess.run(["git", "-C", str(repo), "archive", COMMIT, "movinets"], capture_output=True, check=True)
    tarfile.open(fileobj=io.BytesIO(archive.stdout)).extractall(workdir, filter="data")
    sys.path.insert(0, str(workdir))
    return importlib.import_module("movinets.models")


def their_config(spec: dict[str, Any]) -> SimpleNamespace:
    """The reduced spec as the config object their ``MoViNet`` reads (attribute names are theirs).

    Paddings are irrelevant: with ``tf_like=True`` (as for their pretrained models) they compute
    TF 'same' padding themselves.
    """
    def conv(cin: int, cout: int, kernel: list[int], stride: list[int]) -> SimpleNamespace:
        return SimpleNamespace(
            input_channels=cin, out_channels=cout, kernel_size=tuple(kernel), stride=tuple(stride),
            padding=tuple(k // 2 for k in kernel),
        )

    stem = spec["stem"]
    channels = stem["filters"]
    blocks = []
    for block in spec["blocks"]:
        layers = []
        for layer in block["layers"]:
            cfg = conv(channels, block["base_filters"], layer["kernel"], layer["stride"])
            cfg.expanded_channels = layer["expand_filters"]
            cfg.padding_avg = (0, 1, 1)
            layers.append(cfg)
            channels = block["base_filters"]
        blocks.append(layers)
    return SimpleNamespace(
        name="reduced",
        conv1=conv(3, stem["filters"], stem["kernel"], stem["stride"]),
        blocks=blocks,
        conv7=conv(channels, spec["head"]["project_filters"], [1, 1, 1], [1, 1, 1]),
        dense9=SimpleNamespace(hidden_dim=spec["head"]["hidden_filters"]),
    )


@torch.no_grad()
def randomize(model: nn.Module, generator: torch.Generator) -> None:
    """Random weights at a scale that keeps activations O(1), random BN statistics and affine terms,
    and non-zero ReZero scalars (``alpha``), so that every tensor shows in the logits."""
    for name, tensor in model.state_dict().items():
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "num_batches_tracked":
            tensor.fill_(int(torch.randint(1, 1000, (), generator=generator)))
        elif leaf == "running_mean" or (leaf == "bias" and ".norm." in name):
            tensor.uniform_(-0.2, 0.2, generator=generator)
        elif leaf == "running_var" or (leaf == "weight" and ".norm." in name):
            tensor.uniform_(0.5, 1.5, generator=generator)
        elif leaf == "alpha":
            tensor.uniform_(0.3, 1.0, generator=generator)
        elif leaf == "bias":
            tensor.uniform_(-0.1, 0.1, generator=generator)
        elif leaf == "weight":  # conv: fan-in over input channels per group and kernel
            fan_in = tensor[0].numel()
            tensor.normal_(0.0, 1.0 / fan_in**0.5, generator=generator)
        else:
            raise ValueError(f"no randomisation rule for {name}")


def conv7_frames(model: nn.Module, run) -> torch.Tensor:
    """Their conv7 output averaged over space, per frame, while ``run()`` runs."""
    captured = []
    hook = model.conv7.register_forward_hook(lambda m, i, o: captured.append(o.mean(dim=(3, 4)).transpose(1, 2)))
    try:
        run()
    finally:
        hook.remove()
    return torch.cat(captured, dim=1)


def make_fixture(models: Any, causal: bool, generator: torch.Generator) -> dict[str, Any]:
    conv_type = "2plus1d" if causal else "3d"  # what their pretrained=True chooses
    model = models.MoViNet(
        their_config(REDUCED_SPEC), causal=causal, pretrained=False, num_classes=NUM_CLASSES,
        conv_type=conv_type, tf_like=True,
    )
    randomize(model, generator)
    model.eval()
    frames = torch.randint(0, 256, CLIP, dtype=torch.uint8, generator=generator)
    clip = frames.float() / 255

    with torch.no_grad():
        if causal:
            model.clean_activation_buffers()
        logits = []
        embeddings = conv7_frames(model, lambda: logits.append(model(clip)))
        fixture = {
            "commit": COMMIT,
            "spec": REDUCED_SPEC,
            "num_classes": NUM_CLASSES,
            "causal": causal,
            "state_dict": {k: v.clone() for k, v in model.state_dict().items()},
            "frames": frames,
            "logits": logits[0],
            "conv7_frames": embeddings,
        }
        if causal:  # one frame at a time, after cleaning the buffers of the whole-clip run
            model.clean_activation_buffers()
            fixture["stream_logits"] = torch.stack([model(clip[:, :, t : t + 1]) for t in range(clip.shape[2])])
            assert torch.allclose(fixture["stream_logits"][-1], fixture["logits"], atol=1e-5)
    print(f"{'stream' if causal else 'base'}: {len(fixture['state_dict'])} tensors, "
          f"{sum(v.numel() for v in fixture['state_dict'].values())} numbers, logits std {logits[0].std():.3f}")
    return fixture


def full_size_layouts(repo_models: Any) -> dict[str, dict[str, list[int]]]:
    """Key -> shape of their full-size models, built as ``pretrained=True`` builds them (no download)."""
    config = importlib.import_module("movinets.config")._C.MODEL
    layouts = {}
    for index in range(6):
        for causal in (False, True) if index < 3 else (False,):
            model = repo_models.MoViNet(
                getattr(config, f"MoViNetA{index}"), causal=causal, pretrained=False, num_classes=600,
                conv_type="2plus1d" if causal else "3d", tf_like=True,
            )
            name = f"movinet_a{index}_stream" if causal else f"movinet_a{index}"
            layouts[name] = {key: list(value.shape) for key, value in model.state_dict().items()}
    return layouts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", type=Path, help="git checkout (or bare clone) of Atze00/MoViNet-pytorch")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help=f"output folder (default {OUT_DIR})")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as workdir:
        models = import_movinets(args.checkout, Path(workdir))
        generator = torch.Generator().manual_seed(SEED)
        args.out.mkdir(parents=True, exist_ok=True)
        for causal in (False, True):
            path = args.out / f"movinet_pytorch_{'stream' if causal else 'base'}.pt"
            torch.save(make_fixture(models, causal, generator), path)
            print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
        path = args.out / "movinet_pytorch_shapes.json.gz"
        layouts = {"commit": COMMIT, "models": full_size_layouts(models)}
        with gzip.GzipFile(path, "wb", mtime=0) as file:  # mtime 0: the same bytes on every run
            file.write(json.dumps(layouts, indent=0, sort_keys=True).encode())
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    print(json.dumps({"commit": COMMIT, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
