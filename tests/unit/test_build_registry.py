"""Fast tests of rap.build.registry: the address it listens on, its config; nothing here builds or runs it."""

from __future__ import annotations

import pytest
import yaml

from rap.build import registry


def test_config_listens_on_the_one_address_with_storage_in_the_folder(tmp_path):
    config = yaml.safe_load(registry.config_text("127.0.0.1", 5000, tmp_path / "storage"))
    assert config["http"] == {"addr": "127.0.0.1:5000"}
    assert config["storage"]["filesystem"] == {"rootdirectory": str(tmp_path / "storage")}
    assert "debug" not in config["http"] and "prometheus" not in str(config)
    assert yaml.safe_load(registry.config_text("::1", 5000, tmp_path))["http"]["addr"] == "[::1]:5000"


@pytest.mark.parametrize("bad", ["0.0.0.0", "::", "", "localhost", "example.org"])
def test_every_interface_or_a_name_is_refused(bad, tmp_path):
    with pytest.raises(registry.RegistryError, match="loopback"):
        registry.LocalRegistry(bad, 5000, tmp_path)


def test_a_bad_port_or_a_missing_binary_says_so(tmp_path):
    with pytest.raises(registry.RegistryError, match="1..65535"):
        registry.LocalRegistry("127.0.0.1", 0, tmp_path)
    with pytest.raises(registry.RegistryError, match="python3 -m rap.build.registry build"):
        registry.LocalRegistry("127.0.0.1", 5000, tmp_path, binary=tmp_path / "registry").start()
    assert registry.LocalRegistry("10.200.0.1", 5000, tmp_path).address == "10.200.0.1:5000"
