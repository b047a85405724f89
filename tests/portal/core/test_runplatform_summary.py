"""The line `make run` prints on each campaign every 15 s."""

from __future__ import annotations

from portal.campaigns.models import Campaign
from portal.core.management.commands.runplatform import Command


def test_a_boss_fight_line_shows_its_win_rates_next_to_its_returns():
    arena = Campaign(
        slug="iudex-arena-demo", status="running", model_version=152, samples_total=126_169, episodes_total=250,
        clients_active=2, mean_return_recent=0.043, win_rate_recent=0.48, eval_version=119, eval_return=0.12,
        eval_win_rate=0.6,
    )
    assert Command.summary(arena) == (
        "iudex-arena-demo: running, model v152, 126,169 samples, 250 episodes, 2 clients, mean return 0.04, "
        "won 48% of the last fights; evaluation of v119: return 0.12, won 60%"
    )


def test_a_cartpole_line_has_no_win_rate():
    cartpole = Campaign(
        slug="cartpole-demo", status="running", model_version=7, samples_total=7_970, episodes_total=300,
        clients_active=2, mean_return_recent=47.43,
    )
    assert Command.summary(cartpole) == (
        "cartpole-demo: running, model v7, 7,970 samples, 300 episodes, 2 clients, mean return 47.4"
    )
