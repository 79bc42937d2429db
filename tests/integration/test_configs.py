"""Every Hydra config composes with every option of its groups, and unknown keys are rejected."""

from importlib.resources import files

import pytest
from hydra import compose, initialize_config_module
from hydra.errors import ConfigCompositionException


def _options(module: str, group: str) -> list[str]:
    root = files(module) / group
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


PRIMARY = {
    ("kinclose.conf", "shock"): ["model", "collision"],
    ("kinclose.conf", "bench"): ["collision"],
    ("kinclose.conf", "mach_sweep"): ["collision"],
    ("kinclose.conf", "bench_speed"): [],
    ("kinclose.conf", "sweep"): [],
    ("kinclose.conf", "label"): ["dataset"],
    ("kinclose.conf", "train"): ["stage"],
    ("kinclose.conf", "elt"): [],
    ("kinclose.conf", "pipeline"): [],
    ("kinclose.conf.solve", "config"): ["model"],
}


@pytest.mark.parametrize("module, name", list(PRIMARY))
def test_config_composes_with_every_group_option(module, name):
    with initialize_config_module(config_module=module, version_base="1.3"):
        cfg = compose(config_name=name)
        assert cfg is not None
        for group in PRIMARY[(module, name)]:
            for opt in _options(module, group):
                c = compose(config_name=name, overrides=[f"{group}={opt}"])
                assert c[group] is not None


@pytest.mark.parametrize("module, name", list(PRIMARY))
def test_unknown_key_is_rejected(module, name):
    with initialize_config_module(config_module=module, version_base="1.3"):
        with pytest.raises(ConfigCompositionException):
            compose(config_name=name, overrides=["no_such_key_anywhere=1"])
