"""SoulsGym env kwargs are checked per env id when a campaign is created, not on every volunteer's machine.

soulsgym 1.1.0's IudexEnv takes game_speed, phase and init_pose_randomization; IudexEnvDemo takes no
phase (it fights both). The server accepted anything before: a Demo campaign with a phase would have
failed on every client with a TypeError from soulsgym.
"""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from portal.campaigns.models import Campaign
from portal.campaigns.services import campaign_create

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("env_id", "env_kwargs", "says"),
    [
        ("SoulsGymIudexDemo-v0", {"phase": 2}, "SoulsGymIudexDemo-v0 does not take 'phase'"),
        ("SoulsGymIudex-v0", {"phase": 3}, "phase must be 1 or 2"),
        ("SoulsGymIudex-v0", {"boss_damage": 0.4}, "does not take 'boss_damage'"),
        ("SoulsGymIudex-v0", {"game_speed": 9}, "game_speed must be a number in (0, 5]"),
    ],
)
def test_a_soulsgym_campaign_with_a_kwarg_its_env_does_not_take_is_refused(env_id, env_kwargs, says):
    with pytest.raises(ValidationError) as excinfo:
        campaign_create(slug="bad", name="Bad", env_id=env_id, env_kwargs=env_kwargs)
    assert says in str(excinfo.value)
    assert not Campaign.objects.filter(slug="bad").exists()


def test_the_kwargs_each_soulsgym_env_takes_are_accepted():
    game = campaign_create(
        slug="iudex2", name="Iudex phase 2", env_id="SoulsGymIudex-v0",
        env_kwargs={"game_speed": 2, "phase": 2, "init_pose_randomization": True},
    )  # fmt: skip
    demo = campaign_create(
        slug="demo",
        name="Demo",
        env_id="SoulsGymIudexDemo-v0",
        env_kwargs={"game_speed": 1, "init_pose_randomization": False},
    )
    assert game.env_kwargs["phase"] == 2 and demo.env_id == "SoulsGymIudexDemo-v0"
