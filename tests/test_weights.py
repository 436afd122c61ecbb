"""Tests for mvd.weights: safetensors + model card round trip, safe .pth reading, checkpoint import."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from mvd.model import VisionTransformer, create_model
from mvd.weights import (
    CARD_FILE,
    WEIGHTS_FILE,
    UnsafeCheckpointError,
    import_checkpoint,
    load_model,
    load_pretrained,
    read_state_dict,
    save_model,
)

torch.set_num_threads(2)

LABELS = ["idle", "Self-Grooming", "Head/Body TWITCH"]


def _video(seed: int = 0, frames: int = 4, size: int = 32) -> torch.Tensor:
    return torch.randn(2, 3, frames, size, size, generator=torch.Generator().manual_seed(seed))


def _card(**changes) -> dict:
    card = {
        "arch": "vit_tiny",
        "num_classes": 3,
        "labels": LABELS,
        "input": {
            "num_frames": 4,
            "sampling_rate": 2,
            "img_size": 32,
            "tubelet_size": 2,
            "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225],
        },
        "model_kwargs": {"drop_path_rate": 0.1},
        "train_config": {"epochs": 1, "lr": 6e-4},
        "data_version": "abc123",
    }
    card.update(changes)
    return card


def _randomised_model(seed: int, num_classes: int = 3, **kwargs) -> VisionTransformer:
    """A tiny model whose every tensor (norms and head included) is random, so loads are checked fully."""
    model = create_model("vit_tiny", num_classes=num_classes, num_frames=4, img_size=32, **kwargs)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return model.eval()


class Payload:
    """Any Python object that is not a tensor or a plain container."""

    def __init__(self) -> None:
        self.value = 3


def test_save_load_round_trip(tmp_path: Path) -> None:
    model = _randomised_model(0, drop_path_rate=0.1)
    out = save_model(model, tmp_path / "m", _card())
    assert sorted(p.name for p in out.iterdir()) == [WEIGHTS_FILE, CARD_FILE]  # no temp files left
    card = json.loads((out / CARD_FILE).read_text())
    assert card["schema"] == 1 and card["format"] == "safetensors" and card["labels"] == LABELS
    loaded, card2 = load_model(out)
    assert card2 == card
    assert not loaded.training
    assert loaded.blocks[-1].drop_path.drop_prob == pytest.approx(0.1)  # model_kwargs applied
    x = _video(1)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_save_model_validates_card(tmp_path: Path) -> None:
    model = _randomised_model(0)
    card = _card()
    del card["data_version"]
    with pytest.raises(ValueError, match="data_version"):
        save_model(model, tmp_path, card)
    with pytest.raises(ValueError, match="sampling_rate"):
        save_model(model, tmp_path, _card(input={"num_frames": 4}))
    with pytest.raises(ValueError, match="2 labels"):
        save_model(model, tmp_path, _card(labels=["idle", "x"]))
    with pytest.raises(ValueError, match="num_classes=5"):
        save_model(model, tmp_path, _card(num_classes=5, labels=None))
    with pytest.raises(ValueError, match="unknown arch"):
        save_model(model, tmp_path, _card(arch="resnet"))
    assert not (tmp_path / WEIGHTS_FILE).exists()


def test_load_model_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=CARD_FILE):
        load_model(tmp_path)
    out = save_model(_randomised_model(0), tmp_path / "m", _card())
    (out / WEIGHTS_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=WEIGHTS_FILE):
        load_model(out)
    # weights from a deeper model do not match the card's vit_tiny
    out2 = save_model(_randomised_model(0), tmp_path / "m2", _card())
    card = json.loads((out2 / CARD_FILE).read_text())
    card["model_kwargs"] = {"depth": 3}
    (out2 / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(ValueError, match=r"model.safetensors.*unexpected keys \['blocks\.3\."):
        load_model(out2)


def test_read_plain_pth_and_load_pretrained(tmp_path: Path) -> None:
    src = _randomised_model(1)
    path = tmp_path / "plain.pth"
    torch.save(src.state_dict(), path)
    state = read_state_dict(path)
    assert set(state) == set(src.state_dict())
    target = create_model("vit_tiny", num_classes=3, num_frames=4, img_size=32).eval()
    info = load_pretrained(target, path)
    assert info["head_loaded"] and info["loaded"] == len(state)
    x = _video(2)
    with torch.no_grad():
        torch.testing.assert_close(target(x), src(x), rtol=0, atol=0)


def test_read_official_container_with_args(tmp_path: Path) -> None:
    src = _randomised_model(2)
    path = tmp_path / "checkpoint-best.pth"
    args = argparse.Namespace(model="vit_small_patch16_224", nb_classes=3, lr=6e-4)
    torch.save({"model": src.state_dict(), "epoch": 39, "args": args, "optimizer": {"state": {}}}, path)
    assert set(read_state_dict(path)) == set(src.state_dict())


def test_arbitrary_pickle_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"model": _randomised_model(0).state_dict(), "extra": Payload()}, path)
    with pytest.raises(UnsafeCheckpointError, match="evil.pth.*arbitrary unpickling.*safetensors") as excinfo:
        read_state_dict(path)
    assert "refused" in str(excinfo.value)
    with pytest.raises(UnsafeCheckpointError):
        load_pretrained(create_model("vit_tiny", num_classes=3, num_frames=4, img_size=32), path)


def test_read_state_dict_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        read_state_dict(tmp_path / "missing.pth")
    (tmp_path / "weights.npz").write_bytes(b"x")
    with pytest.raises(ValueError, match="unsupported"):
        read_state_dict(tmp_path / "weights.npz")
    (tmp_path / "broken.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="broken.safetensors"):
        read_state_dict(tmp_path / "broken.safetensors")


def test_read_state_dict_from_model_dir(tmp_path: Path) -> None:
    src = _randomised_model(3)
    out = save_model(src, tmp_path / "m", _card())
    state = read_state_dict(out)
    assert all(torch.equal(state[k], v) for k, v in src.state_dict().items())


def test_import_finetuned_checkpoint(tmp_path: Path) -> None:
    src = _randomised_model(4)
    path = tmp_path / "mvd_finetuned.pth"
    torch.save({"module": src.state_dict(), "args": argparse.Namespace(epochs=40)}, path)
    out = import_checkpoint(path, "vit_tiny", tmp_path / "imported", labels=LABELS, num_frames=4, img_size=32)
    model, card = load_model(out)
    assert card["num_classes"] == 3 and card["labels"] == LABELS
    assert card["source"]["head_loaded"] and card["source"]["checkpoint"] == "mvd_finetuned.pth"
    assert card["input"]["num_frames"] == 4 and card["input"]["img_size"] == 32
    x = _video(5)
    with torch.no_grad():
        torch.testing.assert_close(model(x), src(x), rtol=0, atol=0)


def test_import_pretrained_backbone(tmp_path: Path) -> None:
    src = _randomised_model(5, init_values=0.1)  # layer-scale checkpoint
    state = {"encoder." + k: v for k, v in src.state_dict().items() if not k.startswith(("head.", "fc_norm."))}
    state["encoder.norm.weight"] = torch.randn(192)
    state["encoder.norm.bias"] = torch.randn(192)
    state["mask_token"] = torch.zeros(1, 1, 96)
    state["encoder_to_decoder.weight"] = torch.zeros(96, 192)
    state["decoder.blocks.0.norm1.weight"] = torch.ones(96)
    path = tmp_path / "pretrained.pth"
    torch.save({"model": state}, path)
    with pytest.raises(ValueError, match="num_classes"):
        import_checkpoint(path, "vit_tiny", tmp_path / "nope", num_frames=4, img_size=32)
    out = import_checkpoint(path, "vit_tiny", tmp_path / "backbone", num_classes=3, num_frames=4, img_size=32)
    model, card = load_model(out)
    assert card["labels"] is None and card["num_classes"] == 3
    assert card["source"]["layout"] == "pretrained" and not card["source"]["head_loaded"]
    assert card["model_kwargs"]["init_values"] > 0
    with torch.no_grad():
        src.fc_norm.weight.fill_(1.0)
        src.fc_norm.bias.zero_()
    x = _video(6)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(x), src.forward_features(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match="vit_small"):
        import_checkpoint(path, "vit_small", tmp_path / "wrong", num_classes=3, num_frames=4, img_size=32)
