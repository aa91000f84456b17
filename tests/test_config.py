import pytest
from pydantic import ValidationError

from optmem.config import ConfigError, MemoryConfig, ScheduleConfig, load_config


def test_defaults_round_trip_through_toml(tmp_path):
    cfg = MemoryConfig()
    path = tmp_path / "optmem.toml"
    path.write_text(cfg.to_toml())
    assert MemoryConfig.from_toml(path) == cfg


def test_toml_overrides_nested_fields(tmp_path):
    path = tmp_path / "optmem.toml"
    path.write_text('recent_turns = 4\narchive = "optical"\n[schedule]\nage_unit = "turns"\n'
                    '[[schedule.steps]]\ntier = "base"\nuntil = 50\n[[schedule.steps]]\ntier = "tiny"\nuntil = 500\n')
    cfg = load_config(path)
    assert cfg.recent_turns == 4 and cfg.archive == "optical"
    assert cfg.schedule.age_unit == "turns" and [s.tier for s in cfg.schedule.steps] == ["base", "tiny"]


@pytest.mark.parametrize("data, field", [
    ({"recent_turns": -1}, "recent_turns"),
    ({"budget": 3}, "budget"),
    ({"archive": "paper"}, "archive"),
    ({"sent_images": "lazy"}, "sent_images"),
    ({"tier_moves": "soon"}, "tier_moves"),
    ({"typo_field": 1}, "typo_field"),
    ({"schedule": {"age_unit": "fortnights"}}, "age_unit"),
    ({"retrieval": {"chunk_chars": 50}}, "chunk_chars"),
    ({"reexpand": {"engine": "magic"}}, "engine"),
    ({"render": {"page_px": -5}}, "page_px"),
])
def test_bad_values_are_validation_errors_naming_the_field(data, field):
    with pytest.raises(ValidationError) as e:
        MemoryConfig.model_validate(data)
    assert field in str(e.value)


def test_unreadable_config_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        MemoryConfig.from_toml(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("recent_turns = = 3")
    with pytest.raises(ConfigError, match="not valid TOML"):
        MemoryConfig.from_toml(bad)


def test_paper_schedule_is_valid_config():
    cfg = MemoryConfig(schedule=ScheduleConfig.paper())
    assert cfg.schedule.steps[0].tier == "gundam"
