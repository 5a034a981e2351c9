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


# ------------------------------------------------------------------ one config: TrainConfig is LoRAMiniConfig + training
def test_train_config_and_loramini_config_agree_on_every_shared_field_and_default():
    import dataclasses

    from loramini.train import TrainConfig

    adapter = {f.name: f for f in dataclasses.fields(LoRAMiniConfig)}
    train = {f.name: f for f in dataclasses.fields(TrainConfig)}
    assert set(adapter) <= set(train), set(adapter) - set(train)  # every adapter field is reachable in training
    defaults = lambda f: f.default_factory() if f.default is dataclasses.MISSING else f.default
    for name, f in adapter.items():
        assert train[name].type == f.type and defaults(train[name]) == defaults(f), name
    assert TrainConfig().adapter_config() == LoRAMiniConfig()


def test_train_config_passes_every_adapter_field_through():
    from loramini.train import TrainConfig

    cfg = TrainConfig(r=2, a=8, b=4, alpha=3.0, dropout=0.1, target_modules="attention", modules_to_save=[],
                      projection_seed=5, save_projection=True, aux_init="orthogonal", use_rslora=True)
    assert cfg.adapter_config() == LoRAMiniConfig(r=2, a=8, b=4, alpha=3.0, dropout=0.1, target_modules="attention",
                                                  modules_to_save=[], projection_seed=5, save_projection=True,
                                                  aux_init="orthogonal", use_rslora=True)


def test_cli_exposes_every_train_config_field_with_its_default():
    import dataclasses

    from loramini.cli import build_parser
    from loramini.train import TrainConfig

    finetune = build_parser()._subparsers._group_actions[0].choices["finetune"]
    by_dest = {a.dest: a for a in finetune._actions}
    args = build_parser().parse_args(["finetune"])
    for f in dataclasses.fields(TrainConfig):
        assert f.name in by_dest and by_dest[f.name].help, f.name
        if f.name != "output_dir":  # the command line names a default folder
            assert getattr(args, f.name) == getattr(TrainConfig(), f.name), f.name
    args = build_parser().parse_args(["finetune", "--use-rslora", "--save-projection", "--modules-to-save", "",
                                      "--aux-init", "orthogonal", "--projection-seed", "3", "--dropout", "0.1"])
    assert (args.use_rslora, args.save_projection, args.modules_to_save) == (True, True, [])
    assert (args.aux_init, args.projection_seed, args.dropout) == ("orthogonal", 3, 0.1)
