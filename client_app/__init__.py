"""SoulsAI volunteer client.

Plays a campaign's environment with the campaign's current policy and streams the experience to the
SoulsAI server. The wire protocol (``client_app.protocol``), the space specs (``client_app.spaces``)
and the policy networks (``client_app.policy``) are the contract shared with the server: they are
defined here, once, and the server imports them.

Importing the package registers ``soulsai/IudexArena-v0`` with gymnasium (by name only: the arena
module is imported when an env is made).
"""

import os

# One BLAS thread, set before NumPy loads. The client's networks are tiny (one observation at a
# time): a multi-threaded OpenBLAS wakes its threads for every matrix product and they spin-wait
# (sched_yield) between steps, which cost one client 20% of a core at 100 steps/s, and 87% unpaced,
# for nothing — CPU the game needs. Volunteers can still override these.
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

__version__ = "0.3.0"


def _register_envs() -> None:
    from gymnasium.envs.registration import register, registry

    if "soulsai/IudexArena-v0" not in registry:
        register(
            id="soulsai/IudexArena-v0",
            entry_point="client_app.arena:IudexArena",
            max_episode_steps=3000,  # SoulsGym cuts its episodes at 3000 steps too
        )


_register_envs()
