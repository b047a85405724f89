"""Identity changes while a connection streams: revoking, deactivating or deleting must act at once
(the connection closes, nothing more is stored), and reconnecting must fail."""

from __future__ import annotations

import time

from hostile import wire
from hostile.cases.common import answer_code
from hostile.registry import REGISTRY, Verdict


def _revoke(world, campaign, token):
    from portal.machines.services import token_revoke

    token_revoke(token=token)


def _deactivate(world, campaign, token):
    user = token.user
    user.is_active = False
    user.save()


def _delete_user(world, campaign, token):
    token.user.delete()


def _delete_token(world, campaign, token):
    token.delete()


def _quiet_revoke(world, campaign, token):
    from trainer.keys import CampaignKeys

    world.redis_client().sadd(CampaignKeys(campaign.id).revoked, token.id)


def _stop(world, campaign, token):
    from portal.campaigns.services import campaign_stop

    campaign_stop(campaign=campaign)


def _mid_connection(change, *, send_eval: bool = False):
    def fn(world) -> Verdict:
        campaign = world.campaign()
        if send_eval:
            from trainer.evaluation import evaluation_request
            from trainer.keys import CampaignKeys

            model = world.publish(campaign, 1)
            evaluation_request(world.redis_client(), CampaignKeys(campaign.id), model=model.notice(), episodes=5)
        token, raw = world.token(campaign)
        with world.session(raw) as s:
            first = s.answer(wire.chunk(done=send_eval)) or {}
            before = world.figures(campaign).xlen
            change(world, campaign, token)
            time.sleep(0.5)  # "at once": well within half a second
            message = wire.eval_result(1) if send_eval else wire.chunk()
            reply = s.answer(message, timeout=2)
            code = answer_code(reply, s.close_code)
        figures = world.figures(campaign)
        if send_eval:
            from trainer.keys import CampaignKeys

            got = int(world.redis_client().hget(CampaignKeys(campaign.id).evals(1), "episodes") or 0) > 0
        else:
            got = figures.xlen > before
        return Verdict((reply or {}).get("type") != "ack", got,
                       f"first {answer_code(first, None)}; after the change: {code}; stream {before} -> {figures.xlen}")

    return fn


def _reconnect(change):
    def fn(world) -> Verdict:
        campaign = world.campaign()
        token, raw = world.token(campaign)
        change(world, campaign, token)
        try:
            with world.session(raw) as s:
                welcomed = (s.welcome or {}).get("type") == "welcome"
                reply = s.answer(wire.chunk()) if welcomed else None
        except Exception as exc:
            return Verdict(True, False, f"upgrade refused ({type(exc).__name__})")
        stored = world.figures(campaign).xlen > 0
        return Verdict(not welcomed, welcomed or stored, f"welcomed {welcomed}; chunk {answer_code(reply, None)}")

    return fn


CASES = [
    ("revoke_streaming", "revoke the token while it streams: closed, nothing more stored", _mid_connection(_revoke)),
    ("deactivate_streaming", "deactivate the user while their machine streams: acts like a revocation",
     _mid_connection(_deactivate)),
    ("delete_user_streaming", "delete the user while their machine streams: nothing more stored",
     _mid_connection(_delete_user)),
    ("delete_token_streaming", "delete the token row while it streams: nothing more stored",
     _mid_connection(_delete_token)),
    ("revoked_set_only", "only the Redis revoked set says so (its notice missed): the store script refuses",
     _mid_connection(_quiet_revoke)),
    ("stop_streaming", "stop the campaign while a machine streams: nothing more stored", _mid_connection(_stop)),
    ("revoke_under_load", "revoke while 200 chunks are on the wire: nothing sent after the revocation is stored",
     None),
    ("deactivate_then_eval", "deactivate the user, then an evaluation result on the open connection: not counted",
     _mid_connection(_deactivate, send_eval=True)),
    ("revoke_then_eval", "revoke in Redis only, then an evaluation result: not counted",
     _mid_connection(_quiet_revoke, send_eval=True)),
    ("revoked_reconnect", "reconnect with a revoked token: no welcome", _reconnect(_revoke)),
    ("deactivated_reconnect", "reconnect as a deactivated user: no welcome", _reconnect(_deactivate)),
    ("deleted_user_reconnect", "reconnect with the token of a deleted user: no welcome", _reconnect(_delete_user)),
    ("deleted_token_reconnect", "reconnect with a deleted token: no welcome", _reconnect(_delete_token)),
]

def revoke_under_load(world) -> Verdict:
    """Revocation acts at once: once token_revoke returned, the store script refuses the token."""
    from portal.machines.services import token_revoke

    campaign = world.campaign()
    token, raw = world.token(campaign)
    with world.session(raw) as s:
        for _ in range(50):
            s.answer(wire.chunk(steps=2))
        before = world.figures(campaign).xlen
        token_revoke(token=token)
        sent = sum(s.send(wire.chunk(steps=2)) for _ in range(200))
        s.drain(0.5)
    after = world.figures(campaign).xlen
    return Verdict(after == before, after > before,
                   f"{before} stored before the revocation; {sent} sent after it; {after - before} of those stored")


CASES = [(n, d, f or revoke_under_load) for n, d, f in CASES]

for i, (name, doc, fn) in enumerate(CASES):
    REGISTRY.add("identity", name, doc, fn, quick=i == 1)
