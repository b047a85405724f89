"""The Redis key layout of one campaign, shared by the relay, the learner and the stats roll-ups.

Plain Python, no Django: the learner (``trainer``) and the portal import it alike. Every key of a
campaign carries the hash tag ``{c<id>}`` so that one campaign's keys stay in one slot of a Redis
Cluster, which the relay's atomic store script needs.
"""

from __future__ import annotations


class CampaignKeys:
    """Names of one campaign's Redis keys."""

    def __init__(self, campaign_id: int):
        tag = self.tag = f"soulsai:{{c{campaign_id}}}"
        self.stream = f"{tag}:stream"  # chunks waiting for the learner (XADD by the relay)
        self.group = "learner"  # the stream's consumer group
        # + "<machine id>:<chunk id>": set once when a chunk is stored (ids are the client's, so they are
        # de-duplicated per machine: another machine's id never makes a chunk a duplicate). Keys of
        # relays before that were "+ <chunk id>" (``legacy_dedup``), read until they expire.
        self.dedup_prefix = f"{tag}:chunk:"
        self.eval_dedup_prefix = f"{tag}:evalid:"  # + "<machine id>:<result id>": evaluation results' own ids
        self.stats = f"{tag}:stats"  # hash: samples, episodes, chunks
        self.returns = f"{tag}:returns"  # list: latest episode returns, newest first
        self.clients = f"{tag}:clients"  # zset: machine id -> last seen (unix seconds)
        self.machine_samples = f"{tag}:machine_samples"  # hash: machine id -> samples
        self.machine_episodes = f"{tag}:machine_episodes"  # hash: machine id -> episodes
        self.machine_wins = f"{tag}:machine_wins"  # hash: machine id -> boss fights won
        # list: latest boss fights, newest first: "<won 1|0> <boss HP left> <player HP left>" ("1 0.0000
        # 0.4521", HP as fractions), or the bare "1"/"0" of a client that sent no HP (and of older relays)
        self.outcomes = f"{tag}:outcomes"
        self.eval_request = f"{tag}:eval_request"  # hash: version, episodes, assigned (learner asks)
        # hash: "<version>:<machine id>" -> evaluation episodes handed to that machine and not yet
        # answered (the relay's chunk script adds one per hand-out, its eval script takes one per result)
        self.eval_handed = f"{tag}:eval_handed"
        # + version: hash episodes, return_sum, steps, wanted, and for boss fights wins, fights, and
        # hp_fights, boss_hp_sum, player_hp_sum over the fights that reported HP left
        self.evals_prefix = f"{tag}:eval:"
        self.status = f"{tag}:status"  # string: running | paused | stopped
        self.model = f"{tag}:model"  # hash: version, url, sha256 of the current model
        # hash: version, url, sha256 of the best checkpoint while the roll-out gate holds the newest
        # evaluated one back (absent otherwise): what the relay welcomes (re)connecting clients with
        self.agent = f"{tag}:agent"
        self.lease = f"{tag}:lease"  # string: token of the learner that holds the lease
        self.launching = f"{tag}:launching"  # set while a learner task is queued
        self.learner = f"{tag}:learner"  # hash: the learner's own stats
        self.machine_rejections = f"{tag}:machine_rejections"  # hash: machine id -> chunks refused for good
        self.rejection_codes = f"{tag}:rejection_codes"  # hash: "<machine id>:<code>" -> count
        self.flagged = f"{tag}:flagged"  # hash: machine id -> unix time it was flagged for bad data
        self.revoked = f"{tag}:revoked"  # set: ids of revoked machine tokens
        # hash: machine id -> unix time staff voided its data (portal.machines.services.token_void): the
        # learner drops its samples from the buffer or rollout and skips its stream entries
        self.voided = f"{tag}:voided"
        # hash: "<machine id>:<field>" -> running sum of its experience (trainer.machine_stats; the
        # learner adds, the roll-up scores machines against the pool)
        self.machine_stats = f"{tag}:machine_stats"
        # hash: machine id -> samples the learner removed when it applied the void (its answer to staff)
        self.voided_removed = f"{tag}:voided_removed"

    def dedup(self, machine_id: int, chunk_id: str) -> str:
        """A stored chunk's id, in its machine's own namespace."""
        return f"{self.dedup_prefix}{int(machine_id)}:{chunk_id}"

    def legacy_dedup(self, chunk_id: str) -> str:
        """A chunk id as relays before per-machine de-duplication stored it (expire within 7 days)."""
        return self.dedup_prefix + chunk_id

    def eval_dedup(self, machine_id: int, result_id: str) -> str:
        """A stored evaluation result's id, apart from chunk ids, in its machine's namespace."""
        return f"{self.eval_dedup_prefix}{int(machine_id)}:{result_id}"

    def evals(self, version: int) -> str:
        """Greedy evaluation results of one model version (the relay adds, sync_stats reads)."""
        return f"{self.evals_prefix}{int(version)}"

    def rate(self, machine_id: int, second: int) -> str:
        """Chunks (and refused frames) from one machine within one wall-clock second."""
        return f"{self.tag}:rate:{machine_id}:{second}"

    def bad_window(self, machine_id: int) -> str:
        """Bad-data rejections of one machine within the current flagging window."""
        return f"{self.tag}:bad:{machine_id}"
