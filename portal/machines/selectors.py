"""Machine tokens: the read side of the staff's flagged-machines page."""

from __future__ import annotations

from dataclasses import dataclass, field

from client_app.protocol import codes
from portal.core.redis import get_redis
from portal.machines.models import MachineToken
from trainer.keys import CampaignKeys

# Every reject code the relay may count per machine (client_app.protocol.codes' R_* names).
REJECT_CODES = tuple(sorted(v for k, v in vars(codes).items() if k.startswith("R_") and isinstance(v, str)))


@dataclass
class FlaggedMachine:
    token: MachineToken
    reasons: list[tuple[str, int]] = field(default_factory=list)  # (reject code, count), most first


def flagged_machines(*, limit: int = 200) -> list[FlaggedMachine]:
    """Flagged tokens, newest flag first, each with its rejections by reason (from the relay's counters)."""
    tokens = list(
        MachineToken.objects.flagged().select_related("user", "campaign").order_by("-flagged_at")[:limit]
    )
    if not tokens:
        return []
    pipe = get_redis().pipeline(transaction=False)
    for token in tokens:
        pipe.hmget(CampaignKeys(token.campaign_id).rejection_codes, [f"{token.pk}:{c}" for c in REJECT_CODES])
    rows = []
    for token, counts in zip(tokens, pipe.execute(), strict=True):
        reasons = [(code, int(n)) for code, n in zip(REJECT_CODES, counts, strict=True) if n and int(n) > 0]
        rows.append(FlaggedMachine(token=token, reasons=sorted(reasons, key=lambda r: (-r[1], r[0]))))
    return rows
