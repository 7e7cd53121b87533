"""The model catalogue is what settings, downloads and the CLI offer: only what the engine runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from gigaam_api import cli, weights
from gigaam_api.catalogue import (
    CATALOGUE,
    NON_TRANSCRIPTION_MODELS,
    RUNNABLE_MODELS,
    tokenizer_beside,
    tokenizer_candidates,
)
from gigaam_api.config import SettingsError, load_settings
from gigaam_api.model import load_model

NOT_RUNNABLE_RECOGNISERS = [
    name for name, info in CATALOGUE.items() if info.kind is not None and not info.runnable
]
#: Fixtures of the generations beyond v3 (``tests/test_engine_generations.py``).
GENERATION_FIXTURES = Path(__file__).parent / "fixtures" / "generations"


def test_every_recogniser_is_runnable() -> None:
    assert not NOT_RUNNABLE_RECOGNISERS
    assert set(RUNNABLE_MODELS) == {n for n, m in CATALOGUE.items() if m.kind is not None}


def test_every_runnable_model_loads_from_its_published_files(golden_dir: Path) -> None:
    """The fixture checkpoints carry the published layouts: each runnable name loads."""
    for name in RUNNABLE_MODELS:
        info = CATALOGUE[name]
        folder = golden_dir if (golden_dir / name).is_dir() else GENERATION_FIXTURES
        checkpoint = folder / name / info.checkpoint_file
        tokenizer = None if info.tokenizer_file is None else checkpoint.parent / info.tokenizer_file
        model = load_model(checkpoint, tokenizer)
        assert model.kind == info.kind, name


def test_settings_offer_only_runnable_models() -> None:
    for name in RUNNABLE_MODELS:
        assert load_settings(_env_file=None, model=name).model == name
    for name in NOT_RUNNABLE_RECOGNISERS:
        with pytest.raises(SettingsError, match=f"MODEL={name} is not supported by this engine"):
            load_settings(_env_file=None, model=name, allowed_models=[name])
    for name in NON_TRANSCRIPTION_MODELS:
        with pytest.raises(SettingsError, match=f"MODEL={name} is not a transcription model"):
            load_settings(_env_file=None, model=name, allowed_models=[name])
    assert load_settings(_env_file=None).allowed_models == list(RUNNABLE_MODELS)


@pytest.mark.parametrize("name", NOT_RUNNABLE_RECOGNISERS + list(NON_TRANSCRIPTION_MODELS))
def test_cli_does_not_offer_models_the_engine_refuses(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["transcribe", "--model", name, str(tmp_path / "x.wav")])
    assert info.value.code == 2
    assert f"invalid choice: '{name}'" in capsys.readouterr().err
    assert cli.main(["download", name, "--models-dir", str(tmp_path)]) == 2
    assert f"unknown model {name}" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing was fetched


def test_downloads_are_named_and_checked_by_the_catalogue() -> None:
    for name, info in CATALOGUE.items():
        assert weights.model_filenames(name) == (info.checkpoint_file, info.tokenizer_file)
        assert weights.OFFICIAL_CHECKSUMS[info.checkpoint_file] == info.md5


def test_tokenizer_is_looked_for_next_to_the_checkpoint(tmp_path: Path) -> None:
    checkpoint = tmp_path / "finetuned.ckpt"
    assert tokenizer_beside(checkpoint) == tmp_path / "finetuned_tokenizer.model"
    # upstream stores the path it downloaded to: only the file name is used, here first
    assert tokenizer_candidates(checkpoint, "/elsewhere/v3_e2e_ctc_tokenizer.model") == [
        tmp_path / "v3_e2e_ctc_tokenizer.model",
        tmp_path / "finetuned_tokenizer.model",
    ]
    assert tokenizer_candidates(checkpoint) == [tmp_path / "finetuned_tokenizer.model"]
