"""A tiny demo folder laid out as `make demo` lays it out: the shipped samples built, a tiny FLARE
(the tiny recipe) and a tiny random Gemma narrator adapter, for the Space's tests."""

from __future__ import annotations

import pytest

from regen_dataset.export import build_folder
from tests.conftest import REPO, SAMPLES, build_sample_folder

FLARE_TINY = str(REPO / "training" / "recipes" / "flare" / "tiny.yaml")


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory, tiny_gemma_base):
    from tests.regen_models.test_narrator import save_adapter
    from training import train_flare

    demo = tmp_path_factory.mktemp("space-demo")
    folder = build_sample_folder(demo / "regen")
    checkpoints = demo / "checkpoints"
    train_flare.run(
        ["--config", FLARE_TINY, "--dataset_name", str(folder), "--dataset_config", "office",
         "--output_dir", str(checkpoints / "flare-office")]
    )  # fmt: skip
    save_adapter(words_only_base(tiny_gemma_base, demo / "base"), checkpoints / "narrator-office")
    return demo


def words_only_base(tiny_gemma_base, out):
    """A copy of the tiny random Gemma whose generation config forbids blank and special tokens
    and a text of fewer than 6 tokens: a random model would often write nothing visible."""
    import shutil

    from transformers import AutoTokenizer, GenerationConfig

    shutil.copytree(tiny_gemma_base, out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    blank = [i for i in range(len(tokenizer)) if not tokenizer.decode([i]).strip()]
    generation = GenerationConfig.from_pretrained(out)
    generation.suppress_tokens = sorted({*blank, *tokenizer.all_special_ids})
    generation.min_new_tokens = 6
    generation.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_space(tiny_demo):
    """(gr.Blocks, SpaceApp) over the tiny demo folder."""
    from training.space import demo_space

    return demo_space(tiny_demo)


@pytest.fixture(scope="session")
def tiny_lumen(tmp_path_factory, tiny_demo, tiny_gemma_base):
    """A demo folder like `tiny_demo` (linked to it) with a tiny LUMEN (the tiny recipe on a
    tiny random Gemma, trained on a user-disjoint build of the office sample) where `make demo`
    would leave it."""
    from training import train_lumen

    demo = tmp_path_factory.mktemp("space-demo-lumen")
    for name in ("regen", "checkpoints"):
        (demo / name).symlink_to(tiny_demo / name)
    users = demo / "regen-users"
    build_folder(
        {"office": [str(SAMPLES / "office_synthetic.jsonl")]},
        users,
        protocol="user_disjoint",
        progress=False,
    )
    out = demo / "lumen-office"
    train_lumen.run(
        ["--config", str(REPO / "training" / "recipes" / "lumen" / "tiny.yaml"), "--dataset_name",
         str(users), "--dataset_config", "office", "--base_model", str(tiny_gemma_base),
         "--output_dir", str(out)]
    )  # fmt: skip
    return demo


@pytest.fixture(scope="session")
def tiny_fusion(tmp_path_factory, tiny_demo, tiny_gemma_base):
    """A demo folder like `tiny_demo` (linked to it) with a tiny fusion narrator (the tiny
    recipe on a tiny random Gemma, trained on a user-disjoint build of the office sample) where
    `regen train fusion --output_dir DEMO/checkpoints/fusion-office` would leave it."""
    from training import train_fusion

    demo = tmp_path_factory.mktemp("space-demo-fusion")
    (demo / "regen").symlink_to(tiny_demo / "regen")
    (demo / "checkpoints").mkdir()
    (demo / "checkpoints" / "flare-office").symlink_to(tiny_demo / "checkpoints" / "flare-office")
    users = build_sample_folder(demo / "regen-users", "user_disjoint")
    train_fusion.run(
        ["--config", str(REPO / "training" / "recipes" / "fusion" / "tiny.yaml"),
         "--dataset_name", str(users), "--dataset_config", "office", "--base_model",
         str(tiny_gemma_base), "--max_train_rows", "4", "--max_steps", "2",
         "--output_dir", str(demo / "checkpoints" / "fusion-office")]
    )  # fmt: skip
    return demo
