"""Demo data for `manage.py runplatform`: an admin, the demo campaigns (CartPole, the Iudex arena),
demo volunteers (on the first campaign)."""

from __future__ import annotations

import secrets
from pathlib import Path

from django.contrib.auth import get_user_model
from django.db import transaction

from portal.campaigns.models import Campaign
from portal.campaigns.services import campaign_create, campaign_launch, campaign_redis_sync
from portal.machines.models import MachineToken
from portal.machines.services import token_create, token_revoke

DEMO_CAMPAIGNS = [
    {
        "slug": "cartpole-demo",
        "name": "CartPole demo",
        "env_id": "CartPole-v1",
        "description": "Balance a pole on a cart. The quickest way to watch the whole platform learn: "
        "a DQN agent usually balances for hundreds of steps within a few minutes.",
    },
    {
        "slug": "iudex-arena-demo",
        "name": "Iudex Gundyr (arena simulator)",
        "env_id": "soulsai/IudexArena-v0",
        "description": "Dark Souls III's first boss in SoulsAI's arena simulator: the same observations, "
        "actions, masks and rewards as the real fight through SoulsGym, no game needed. Join it to "
        "see a boss-fight campaign (wins, boss HP) without Dark Souls III.",
        # A checkpoint's greedy fights (its replays on the campaign page) every 5k samples rather than
        # the Iudex default's 25k: on one machine the learner ingests about 30 samples/s, so a newcomer
        # watches the first evaluation fight within about 3 minutes instead of 14. Five fights each.
        "hyperparams": {"eval_every_samples": 5_000, "eval_episodes": 5},
    },
]
DEMO_VOLUNTEER = "demo-volunteer"


def demo_admin_ensure(*, password_file: Path) -> tuple[str, str | None]:
    """Create the `admin` superuser once; returns (username, the new password or None if it existed)."""
    User = get_user_model()
    if User.objects.filter(username="admin").exists():
        return "admin", None
    password = secrets.token_urlsafe(12)
    User.objects.create_superuser("admin", "admin@localhost", password)
    password_file.write_text(f"username: admin\npassword: {password}\n")
    password_file.chmod(0o600)
    return "admin", password


def demo_campaigns_ensure() -> list[Campaign]:
    """The demo campaigns exist and, unless an admin stopped or paused them, run."""
    campaigns = []
    for spec in DEMO_CAMPAIGNS:
        campaign = Campaign.objects.filter(slug=spec["slug"]).first()
        if campaign is None:
            campaign = campaign_create(**spec)
        if campaign.status == Campaign.Status.DRAFT:
            campaign = campaign_launch(campaign=campaign)
        campaign_redis_sync(campaign=campaign)
        campaigns.append(campaign)
    return campaigns


@transaction.atomic
def demo_tokens_issue(*, campaign: Campaign, count: int, prefix: str = "demo-client") -> list[tuple[str, str]]:
    """Fresh tokens for the local demo clients of a campaign (its old ones are revoked): [(name, token)]."""
    User = get_user_model()
    user, created = User.objects.get_or_create(username=DEMO_VOLUNTEER, defaults={"email": "demo@localhost"})
    if created:
        user.set_unusable_password()
        user.save()
    for old in MachineToken.objects.active().filter(user=user, campaign=campaign):
        token_revoke(token=old)
    issued = []
    for i in range(1, count + 1):
        name = f"{prefix}-{i}"
        _, raw = token_create(user=user, campaign=campaign, name=name)
        issued.append((name, raw))
    return issued
