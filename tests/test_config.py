"""LoRAMiniConfig: validation at the boundary and the JSON round trip."""

import pytest

from loramini import LoRAMiniConfig


def test_json_round_trip():
    cfg = LoRAMiniConfig(r=4, a=16, b=8, alpha=32, dropout=0.1, target_modules="attention", modules_to_save=[],
                         projection_seed=5, save_projection=True, aux_init="orthogonal", use_rslora=True)
    again = LoRAMiniConfig.from_json(cfg.to_json())
    assert again == cfg
    assert again.scale == pytest.approx(32 / 2)


def test_from_dict_ignores_extra_keys():
    assert LoRAMiniConfig.from_dict({"r": 2, "format": "loramini", "targets": {}}).r == 2


@pytest.mark.parametrize("kwargs,match", [
    ({"r": 0}, "r=0"),
    ({"a": -1}, "a=-1"),
    ({"b": 2.5}, "b=2.5"),
    ({"r": 16, "a": 8, "b": 32}, "wastes parameters"),
    ({"alpha": 0}, "alpha=0"),
    ({"dropout": 1.0}, "dropout=1.0"),
    ({"dropout": -0.1}, "dropout=-0.1"),
    ({"aux_init": "uniform"}, "aux_init='uniform'"),
    ({"target_modules": []}, "target_modules"),
])
def test_bad_values_raise_one_clear_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LoRAMiniConfig(**kwargs)


@pytest.mark.parametrize("kwargs", [{"target_modules": 3}, {"modules_to_save": "classifier"},
                                    {"projection_seed": "zero"}])
def test_bad_types_raise_type_error(kwargs):
    with pytest.raises(TypeError):
        LoRAMiniConfig(**kwargs)
